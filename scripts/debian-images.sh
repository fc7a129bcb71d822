#!/usr/bin/env bash
# Builds local Docker images from Debian packages, without any image registry:
# debootstrap (minbase) + apt-get in a chroot + `docker import`.
#
#   bottle-local/debian:bookworm      minbase + ca-certificates (+ this host's
#                                     extra CAs from /usr/local/share/ca-certificates)
#   bottle-local/mitmproxy:latest     + Debian's mitmproxy (mitmdump) and python3;
#                                     the egress proxy and the network probe image
#   bottle-local/claude-code:latest   + git, curl, procps, user agent (1000), and
#                                     the native Claude Code binary as /usr/local/bin/claude
#
# Usage: scripts/debian-images.sh [--only debian|mitmproxy|claude-code] [--force]
#
# Cached by content: the recipe hash (this file, the pinned versions, the
# architecture and the host's extra CAs) is stored in each image's label
# dev.bottle.recipe; an image whose label matches is left alone. The base rootfs
# tarball is kept in ${BOTTLE_IMAGE_CACHE:-/var/cache/bottle-images}, keyed by
# the hash, so derived images are rebuilt without running debootstrap again.
#
# Packages come from the apt sources this host is configured with (bookworm
# entries of /etc/apt/sources.list.d/*.sources and sources.list), or from
# BOTTLE_DEBIAN_MIRROR if set. The images keep no apt sources (apt lists and
# sources are removed before import): add your own before using apt in them.
# Building needs root (debootstrap, chroot, mount). The build log goes to
# $BOTTLE_IMAGE_CACHE/last-build.log.
set -euo pipefail

# ---- pinned recipe -------------------------------------------------------
SUITE=bookworm
MITMPROXY_VERSION=8.1.1           # Debian bookworm's mitmproxy (8.1.1-2)
CLAUDE_CODE_VERSION=2.1.330       # @anthropic-ai/claude-code and its platform package
CLAUDE_CODE_PKG=@anthropic-ai/claude-code

IMG_DEBIAN=bottle-local/debian:bookworm
IMG_MITMPROXY=bottle-local/mitmproxy:latest
IMG_CLAUDE=bottle-local/claude-code:latest
LABEL_KEY=dev.bottle.recipe
HOST_CA_DIR=/usr/local/share/ca-certificates
ENV_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CACHE=${BOTTLE_IMAGE_CACHE:-/var/cache/bottle-images}

# ---- arguments -----------------------------------------------------------
only="" force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only="${2:-}"; shift ;;
    --only=*) only="${1#--only=}" ;;
    --force) force=1 ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "debian-images: unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
case "$only" in
  "") targets=(debian mitmproxy claude-code) ;;
  debian) targets=(debian) ;;
  mitmproxy) targets=(debian mitmproxy) ;;
  claude-code) targets=(debian claude-code) ;;
  *) echo "debian-images: --only takes debian, mitmproxy or claude-code" >&2; exit 2 ;;
esac

image_of() {
  case "$1" in debian) echo "$IMG_DEBIAN" ;; mitmproxy) echo "$IMG_MITMPROXY" ;; claude-code) echo "$IMG_CLAUDE" ;; esac
}

# ---- recipe hash ----------------------------------------------------------
ARCH=$(dpkg --print-architecture 2>/dev/null || uname -m)
SELF=$(readlink -f "${BASH_SOURCE[0]}")
RECIPE=$(
  {
    cat "$SELF"
    printf 'suite=%s arch=%s mitmproxy=%s claude-code=%s\n' "$SUITE" "$ARCH" "$MITMPROXY_VERSION" "$CLAUDE_CODE_VERSION"
    if [ -d "$HOST_CA_DIR" ]; then find "$HOST_CA_DIR" -type f -name '*.crt' | LC_ALL=C sort | while read -r f; do cat "$f"; done; fi
  } | sha256sum | cut -c1-64
)

up_to_date() { # image
  [ "$force" = 0 ] || return 1
  [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL_KEY\"}}" "$1" 2>/dev/null || true)" = "$RECIPE" ]
}

todo=()
for t in "${targets[@]}"; do
  if up_to_date "$(image_of "$t")"; then echo "$(image_of "$t"): up to date"; else todo+=("$t"); fi
done
[ ${#todo[@]} -gt 0 ] || exit 0

# ---- from here on we build ------------------------------------------------
[ "$(id -u)" = 0 ] || { echo "debian-images: building needs root (debootstrap, chroot)" >&2; exit 1; }
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
LOG="$CACHE/last-build.log"
: >"$LOG"
BASE_TAR="$CACHE/base-$SUITE-$ARCH-$RECIPE.tar"

work=$(mktemp -d "${TMPDIR:-/var/tmp}/bottle-images.XXXXXX")
cleanup() {
  local rc=$? m
  # unmount everything under $work (deepest first) before deleting anything
  for m in $(awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  if awk -v w="$work/" 'index($2, w) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    echo "debian-images: something is still mounted under $work; not removing it" >&2
  else
    rm -rf --one-file-system "$work"
  fi
  if [ $rc -ne 0 ]; then
    echo "debian-images: failed; last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2 || true
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run() { "$@" >>"$LOG" 2>&1; } # quiet, logged

# ---- apt sources: derived from this host's configuration -----------------
# Prints "URI SUITE" for enabled deb entries of $SUITE, $SUITE-updates and
# $SUITE-security with component main and Debian's keyring (or none named).
host_apt_sources() {
  if [ -n "${BOTTLE_DEBIAN_MIRROR:-}" ]; then
    printf '%s %s\n' "$BOTTLE_DEBIAN_MIRROR" "$SUITE" "$BOTTLE_DEBIAN_MIRROR" "$SUITE-updates"
    return
  fi
  {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk '
        function flush(  n, m, i, j, U, S) {
          if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no" && comps ~ /(^|[ \t])main([ \t]|$)/ &&
              (signed == "" || signed ~ /debian-archive/)) {
            n = split(uris, U, /[ \t]+/); m = split(suites, S, /[ \t]+/)
            for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) if (U[i] != "" && S[j] != "") print U[i], S[j]
          }
          types = uris = suites = comps = signed = ""; enabled = "yes"
        }
        BEGIN { enabled = "yes" }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[A-Za-z-]+:/ {
          key = tolower($1); sub(/:$/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
          if (key == "types") types = val; else if (key == "uris") uris = val
          else if (key == "suites") suites = val; else if (key == "components") comps = val
          else if (key == "enabled") enabled = tolower(val); else if (key == "signed-by") signed = val
        }
        END { flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      awk '$1 == "deb" {
        line = $0; sub(/^deb[ \t]+/, "", line); opts = ""
        if (line ~ /^\[/) { opts = line; sub(/\].*/, "", opts); sub(/^\[[^]]*\][ \t]*/, "", line) }
        n = split(line, F, /[ \t]+/)
        if (opts ~ /signed-by=/ && opts !~ /debian-archive/) next
        for (i = 3; i <= n; i++) if (F[i] == "main") { print F[1], F[2]; next }
      }' "$f"
    done
  } | awk -v s="$SUITE" '$2 == s || $2 == s "-updates" || $2 == s "-security"' | awk '!seen[$0]++'
}
SOURCES=$(host_apt_sources)
MIRROR=$(awk -v s="$SUITE" '$2 == s { print $1; exit }' <<<"$SOURCES")
[ -n "$MIRROR" ] || {
  echo "debian-images: no apt source for $SUITE main found in /etc/apt; set BOTTLE_DEBIAN_MIRROR" >&2
  exit 1
}

# ---- chroot helpers --------------------------------------------------------
chroot_prepare() { # root
  local r=$1
  mountpoint -q "$r/proc" || mount -t proc proc "$r/proc"
  awk '{ printf "deb %s %s main\n", $1, $2 }' <<<"$SOURCES" >"$r/etc/apt/sources.list"
  rm -f "$r"/etc/apt/sources.list.d/*
  cat >"$r/etc/apt/apt.conf.d/99bottle-build" <<'EOF'
Acquire::Check-Valid-Until "false";
Acquire::Retries "3";
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
  rm -f "$r/etc/resolv.conf"
  cp -L /etc/resolv.conf "$r/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
  chmod 755 "$r/usr/sbin/policy-rc.d"
}
in_chroot() { # root cmd...
  local r=$1; shift
  run env -i PATH="$ENV_PATH" HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$r" "$@"
}
chroot_finish() { # root
  local r=$1
  in_chroot "$r" apt-get clean
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/debconf/*-old \
    "$r"/var/lib/dpkg/*-old "$r"/var/log/apt/* "$r"/var/log/dpkg.log "$r"/var/log/alternatives.log \
    "$r"/var/log/bootstrap.log "$r"/tmp/* "$r"/var/tmp/* "$r"/root/.cache "$r"/root/.npm
  rm -f "$r/etc/apt/apt.conf.d/99bottle-build" "$r/usr/sbin/policy-rc.d"
  : >"$r/etc/apt/sources.list"
  : >"$r/etc/resolv.conf"
  : >"$r/etc/hostname"
  if mountpoint -q "$r/proc"; then umount "$r/proc"; fi
}
import_rootfs() { # root image changes...
  local r=$1 img=$2 old new; shift 2
  old=$(docker image inspect -f '{{.Id}}' "$img" 2>/dev/null || true)
  tar --numeric-owner --xattrs -C "$r" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf - . |
    docker import --change "ENV PATH=$ENV_PATH" --change "ENV LANG=C.UTF-8" \
      --change "LABEL $LABEL_KEY=$RECIPE" "$@" - "$img" >>"$LOG"
  new=$(docker image inspect -f '{{.Id}}' "$img")
  if [ -n "$old" ] && [ "$old" != "$new" ]; then docker image rm "$old" >/dev/null 2>&1 || true; fi
}
smoke() { # image cmd... : a failing check removes the new image
  local img=$1; shift
  if ! docker run --rm --network none "$@" >>"$LOG" 2>&1; then
    docker image rm "$img" >/dev/null 2>&1 || true
    echo "debian-images: $img failed its check: docker run --rm --network none $*" >&2
    exit 1
  fi
}

# ---- base rootfs (debootstrap, cached) -----------------------------------
base_ready=0
ensure_base_tar() {
  [ "$base_ready" = 0 ] || return 0
  base_ready=1
  if [ "$force" = 0 ] && [ -s "$BASE_TAR" ]; then return; fi
  if ! command -v debootstrap >/dev/null; then
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap ||
      { run apt-get update -qq && run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
  fi
  local r="$work/base"
  local keyring=()
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] && keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
  run debootstrap --variant=minbase --include=ca-certificates "${keyring[@]}" "$SUITE" "$r" "$MIRROR"
  chroot_prepare "$r"
  # keep images small: no docs, man pages or translations from here on
  cat >"$r/etc/dpkg/dpkg.cfg.d/01-bottle-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/* "$r"/usr/share/lintian/*
  if [ -d "$HOST_CA_DIR" ]; then cp -a "$HOST_CA_DIR"/. "$r/usr/local/share/ca-certificates/"; fi
  in_chroot "$r" update-ca-certificates
  in_chroot "$r" apt-get update
  in_chroot "$r" apt-get -y -o Dpkg::Options::=--force-confold upgrade # -updates and -security
  chroot_finish "$r"
  tar --numeric-owner --xattrs -C "$r" -cf "$BASE_TAR.tmp" .
  mv -f "$BASE_TAR.tmp" "$BASE_TAR"
  rm -rf --one-file-system "$r"
  # older recipes' tarballs are of no further use
  find "$CACHE" -maxdepth 1 -name 'base-*.tar' ! -name "$(basename "$BASE_TAR")" -delete
}
new_root() { # name -> path of a fresh copy of the base rootfs
  local r="$work/$1"
  rm -rf --one-file-system "$r"; mkdir -p "$r"
  tar --numeric-owner --xattrs -C "$r" -xpf "$BASE_TAR"
  echo "$r"
}

# ---- the images --------------------------------------------------------------
build_debian() {
  local r; r=$(new_root debian)
  import_rootfs "$r" "$IMG_DEBIAN" --change 'CMD ["bash"]'
  rm -rf --one-file-system "$r"
  smoke "$IMG_DEBIAN" "$IMG_DEBIAN" sh -c 'test -s /etc/ssl/certs/ca-certificates.crt'
}

build_mitmproxy() {
  local r v; r=$(new_root mitmproxy)
  chroot_prepare "$r"
  in_chroot "$r" apt-get update
  in_chroot "$r" apt-get install -y python3 mitmproxy
  v=$(chroot "$r" dpkg-query -W -f '${Version}' mitmproxy)
  case "$v" in "$MITMPROXY_VERSION"-*) ;; *) echo "debian-images: mitmproxy $v installed, recipe pins $MITMPROXY_VERSION" >&2; exit 1 ;; esac
  chroot_finish "$r"
  import_rootfs "$r" "$IMG_MITMPROXY"
  rm -rf --one-file-system "$r"
  smoke "$IMG_MITMPROXY" --cap-drop ALL --user 65534:65534 "$IMG_MITMPROXY" mitmdump --version
  smoke "$IMG_MITMPROXY" --cap-drop ALL --user 65534:65534 "$IMG_MITMPROXY" python3 -c 'import mitmproxy.http'
}

claude_platform_pkg() {
  case "$ARCH" in
    amd64|x86_64) echo "$CLAUDE_CODE_PKG-linux-x64" ;;
    arm64|aarch64) echo "$CLAUDE_CODE_PKG-linux-arm64" ;;
    *) echo "debian-images: no Claude Code binary for $ARCH" >&2; return 1 ;;
  esac
}
claude_tgz() { # fetches (once) the platform package with the host's npm; prints its path
  local pkg tgz dir want
  pkg=$(claude_platform_pkg)
  dir="$CACHE/npm"; mkdir -p "$dir"
  tgz="$dir/$(echo "${pkg#@}" | tr / -)-$CLAUDE_CODE_VERSION.tgz"
  if [ ! -s "$tgz" ]; then
    command -v npm >/dev/null || { echo "debian-images: npm is needed on the host to fetch $pkg" >&2; return 1; }
    # the platform package must be the one the main package names for this version
    want=$(npm view "$CLAUDE_CODE_PKG@$CLAUDE_CODE_VERSION" "optionalDependencies.$pkg" 2>>"$LOG")
    [ "$want" = "$CLAUDE_CODE_VERSION" ] ||
      { echo "debian-images: $CLAUDE_CODE_PKG@$CLAUDE_CODE_VERSION names $pkg@${want:-nothing}" >&2; return 1; }
    rm -rf "$work/npm"; mkdir -p "$work/npm"
    (cd "$work/npm" && npm pack --silent "$pkg@$CLAUDE_CODE_VERSION" >>"$LOG" 2>&1)
    mv -f "$work/npm"/*.tgz "$tgz.tmp" && mv -f "$tgz.tmp" "$tgz"
    find "$dir" -maxdepth 1 -name '*.tgz' ! -name "$(basename "$tgz")" -delete
  fi
  echo "$tgz"
}

build_claude_code() {
  local r tgz; tgz=$(claude_tgz); r=$(new_root claude-code)
  chroot_prepare "$r"
  in_chroot "$r" apt-get update
  in_chroot "$r" apt-get install -y git ca-certificates curl procps
  in_chroot "$r" useradd --uid 1000 --user-group --create-home --home-dir /home/agent --shell /bin/bash agent
  install -d -o 1000 -g 1000 -m 755 "$r/workspace"
  tar -xzf "$tgz" -C "$work" package/claude
  install -o 0 -g 0 -m 755 "$work/package/claude" "$r/usr/local/bin/claude"
  rm -rf "$work/package"
  chroot_finish "$r"
  import_rootfs "$r" "$IMG_CLAUDE" --change 'ENV DISABLE_AUTOUPDATER=1' \
    --change 'USER agent' --change 'WORKDIR /workspace' --change 'CMD ["sleep","infinity"]'
  rm -rf --one-file-system "$r"
  smoke "$IMG_CLAUDE" --user 1000 "$IMG_CLAUDE" claude --version
}

for t in "${todo[@]}"; do
  ensure_base_tar
  case "$t" in
    debian) build_debian ;;
    mitmproxy) build_mitmproxy ;;
    claude-code) build_claude_code ;;
  esac
  echo "$(image_of "$t"): built"
done
