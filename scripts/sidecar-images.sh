#!/usr/bin/env bash
# Builds bottle's sidecar images (and a test-only git host) with `docker build`
# from their Dockerfile recipes, on top of bottle-local/debian:bookworm (made by
# scripts/debian-images.sh), so no image registry is needed; packages come
# from Debian's archive:
#
#   bottle-local/git-gate:latest       images/git-gate          git, git daemon,
#                                      openssh-client, git-secrets
#   bottle-local/supervise:latest      images/supervise         Debian's nodejs (18.x)
#   bottle-local/git-upstream:latest   tests/images/git-upstream  sshd + git, a
#                                      stand-in git host for the tests
#
# Usage: scripts/sidecar-images.sh [--only git-gate|supervise|git-upstream] [--force]
#
# Cached by content: the recipe hash (every file of the recipe directory, with
# its mode, and the base image's id) is stored in each image's label
# dev.bottle.recipe; an image whose label matches is left alone. --force
# rebuilds anyway, without docker's layer cache. Each new image gets a quick
# check (as a non-root uid, with a read-only root where it applies) before it
# is kept. A failed build or check prints the last lines of its output.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=bottle-local/debian:bookworm
LABEL_KEY=dev.bottle.recipe
NAMES=(git-gate supervise git-upstream)

image_of() { echo "bottle-local/$1:latest"; }
dir_of() {
  case "$1" in
    git-gate) echo images/git-gate ;;
    supervise) echo images/supervise ;;
    git-upstream) echo tests/images/git-upstream ;;
  esac
}
die() { echo "sidecar-images: $*" >&2; exit 1; }

# ---- arguments -------------------------------------------------------------
only="" force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only="${2:-}"; shift ;;
    --only=*) only="${1#--only=}" ;;
    --force) force=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "sidecar-images: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
case "$only" in
  "") targets=("${NAMES[@]}") ;;
  git-gate|supervise|git-upstream) targets=("$only") ;;
  *) echo "sidecar-images: --only takes git-gate, supervise or git-upstream" >&2; exit 2 ;;
esac

base_id=$(docker image inspect -f '{{.Id}}' "$BASE" 2>/dev/null) ||
  die "no $BASE image: run scripts/debian-images.sh first"

# ---- recipe hash -------------------------------------------------------------
recipe_hash() { # dir
  (
    cd "$1"
    find . -type f -print0 | LC_ALL=C sort -z | while IFS= read -r -d '' f; do
      printf '%s %s ' "$(stat -c %a "$f")" "$f"
      sha256sum <"$f" | cut -c1-64
    done
    printf 'base=%s\n' "$base_id"
  ) | sha256sum | cut -c1-64
}
label_of() { docker image inspect -f "{{index .Config.Labels \"$LABEL_KEY\"}}" "$1" 2>/dev/null || true; }

# ---- checks: a failing one removes the new image -------------------------------
RO=(--rm --network none --read-only --tmpfs /tmp -e HOME=/tmp)
check() { # name image
  case "$1" in
    git-gate)
      # git and git-secrets run as any uid; ssh needs a passwd entry (65534 is nobody)
      docker run "${RO[@]}" --user 12345:12345 "$2" sh -ec '
        git --version; test -x /usr/lib/git-core/git-daemon
        cd /tmp; git init -q r; cd r; git secrets --register-aws >/dev/null
        echo "key = AKIAZZZZZZZZZZZZZZZQ" >f; ! git secrets --scan f' &&
        docker run "${RO[@]}" --user 65534:65534 "$2" ssh -V ;;
    supervise)
      docker run "${RO[@]}" --user 12345:12345 "$2" node -e 'console.log(process.version)' ;;
    git-upstream)
      docker run --rm --network none "$2" sh -ec '
        id git; test "$(stat -c %U /srv/git)" = git
        mkdir -p /run/sshd; ssh-keygen -q -t ed25519 -N "" -f /tmp/k
        /usr/sbin/sshd -t -h /tmp/k' ;;
  esac
}

# ---- build -------------------------------------------------------------------
log=$(mktemp "${TMPDIR:-/tmp}/sidecar-images.XXXXXX")
trap 'rm -f "$log"' EXIT

for t in "${targets[@]}"; do
  img=$(image_of "$t") dir=$(dir_of "$t")
  [ -f "$dir/Dockerfile" ] || die "$dir/Dockerfile is missing"
  hash=$(recipe_hash "$dir")
  if [ "$force" = 0 ] && [ "$(label_of "$img")" = "$hash" ]; then
    echo "$img: up to date"
    continue
  fi
  old=$(docker image inspect -f '{{.Id}}' "$img" 2>/dev/null || true)
  nocache=()
  [ "$force" = 0 ] || nocache=(--no-cache) # fresh packages, not the builder's layer cache
  if ! docker build --force-rm "${nocache[@]}" --build-arg "BASE=$BASE" --label "$LABEL_KEY=$hash" -t "$img" "$dir" >"$log" 2>&1; then
    echo "sidecar-images: building $img from $dir failed; last lines of the build:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  if ! check "$t" "$img" >"$log" 2>&1; then
    echo "sidecar-images: $img failed its check; its output:" >&2
    tail -n 30 "$log" >&2
    docker image rm "$img" >/dev/null 2>&1 || true
    if [ -n "$old" ]; then docker tag "$old" "$img" 2>/dev/null || true; fi # keep the previous one
    exit 1
  fi
  new=$(docker image inspect -f '{{.Id}}' "$img")
  if [ -n "$old" ] && [ "$old" != "$new" ]; then docker image rm "$old" >/dev/null 2>&1 || true; fi
  echo "$img: built"
done
