/**
 * The git gate: a per-bottle `git daemon` on the bottle's internal network
 * fronting each remote the spec declares, as a mirror. The agent's git is
 * pointed at it (url.<gate>.insteadOf, through GIT_CONFIG_* variables, so
 * nothing in the agent's files can undo it); the gate alone holds the SSH
 * key and the pinned host keys.
 *
 * - A fetch first refreshes the mirror from upstream (the daemon's access
 *   hook); when that fails, the fetch is refused: never stale, never silent.
 * - A push runs the pre-receive hook: only branches and tags; every commit
 *   the push brings (messages and diffs, binary files as text) is scanned
 *   with git-secrets (AWS patterns and common private keys and tokens, the
 *   gate's own config: nothing in the pushed tree can allow a pattern); then
 *   the refs are pushed upstream. Refused or failed upstream, nothing lands
 *   in the mirror, and the agent's git prints the reason.
 *
 * These scripts are written into the state dir (`git/`, mounted read-only
 * at /config in the gate) and run in an image that has git, ssh and
 * git-secrets (images/git-gate). Pure.
 */
import type { DesiredGit } from "./desired.js"

export const GIT_PORT = 9418
export const GIT_ALIAS = "git"
/** Where the mirrors live in the gate: the state dir's `git-mirrors/`. */
export const MIRRORS = "/srv/git"

/** The gate's URL for a remote, as the agent's git is pointed at it. */
export const gateUrl = (remote: string) => `git://${GIT_ALIAS}:${GIT_PORT}/${remote}.git`

/**
 * The agent's git configuration, as environment variables (git ≥ 2.31):
 * each spelling of each remote's URL is rewritten to the gate.
 */
export const agentGitEnv = (git: DesiredGit): ReadonlyArray<string> => {
  const pairs = git.remotes.flatMap((r) => r.spellings.map((s) => [`url.${gateUrl(r.name)}.insteadOf`, s] as const))
  return [
    `GIT_CONFIG_COUNT=${pairs.length}`,
    ...pairs.flatMap(([k, v], i) => [`GIT_CONFIG_KEY_${i}=${k}`, `GIT_CONFIG_VALUE_${i}=${v}`])
  ]
}

/** Secret patterns beyond git-secrets' AWS ones: private keys and the tokens of common hosts. */
export const SECRET_PATTERNS: ReadonlyArray<string> = [
  "-----BEGIN ([A-Z0-9]+ )?PRIVATE KEY( BLOCK)?-----",
  "gh[pousr]_[A-Za-z0-9]{36,}",
  "github_pat_[A-Za-z0-9_]{40,}",
  "glpat-[A-Za-z0-9_-]{20,}",
  "xox[abposr]-[A-Za-z0-9-]{10,}",
  "sk-ant-[A-Za-z0-9_-]{20,}",
  "sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}",
  "AIza[0-9A-Za-z_-]{35}"
]

/** `git/remotes`: one line per remote, `name push url` (names and URLs were checked: no spaces). */
export const renderRemotes = (git: DesiredGit): string =>
  git.remotes.map((r) => `${r.name} ${r.push ? "push" : "fetch"} ${r.url}\n`).join("")


/** The ssh command the gate's git uses for a remote: its key, the pinned keys, nothing asked, nothing learned. */
const SSH_COMMAND = "ssh -F /dev/null -o IdentitiesOnly=yes -o UserKnownHostsFile=/tmp/gate/known_hosts -o GlobalKnownHostsFile=/dev/null " +
  "-o StrictHostKeyChecking=yes -o UpdateHostKeys=no -o BatchMode=yes -o ConnectTimeout=20 -o ServerAliveInterval=15 -o ServerAliveCountMax=2"

/** Shared by the hooks: the remote a repository is, and how to reach its upstream. */
const COMMON = `# Rendered by bottle; rewritten on every apply.
# To the container's log (the daemon's stderr, whatever this hook's own stderr reaches).
log() { { printf 'bottle-git-gate: %s\\n' "$*" >>/proc/1/fd/2; } 2>/dev/null || printf 'bottle-git-gate: %s\\n' "$*" >&2; }
remote_line() { grep -E "^$1 " /config/remotes | head -n 1; }
upstream_env() { # name
  key=/tmp/gate/keys/$1
  if [ -f "$key" ]; then export GIT_SSH_COMMAND="${SSH_COMMAND} -i $key"; else export GIT_SSH_COMMAND="${SSH_COMMAND} -o IdentityFile=none"; fi
}
`

/** The container's entry point: prepares the mirrors and the gate's own config, then serves. */
export const GATE_SCRIPT = `#!/bin/sh
set -eu
umask 077
export HOME=/tmp/gate GIT_CONFIG_NOSYSTEM=1
${COMMON}
mkdir -p /tmp/gate/keys
# ssh wants its files private and owned by whoever runs it: copies, from the read-only config.
cp /config/known_hosts /tmp/gate/known_hosts
for k in /config/keys/*; do [ -f "$k" ] && cp "$k" /tmp/gate/keys/; done
chmod 600 /tmp/gate/known_hosts /tmp/gate/keys/* 2>/dev/null || true
# The scanner's patterns live in the gate's own global config: a pushed tree cannot allow one.
git config --global init.defaultBranch main
git secrets --register-aws --global >/dev/null
while IFS= read -r p; do [ -n "$p" ] && git config --global --add secrets.patterns "$p"; done < /config/secret-patterns
# One mirror per declared remote; a mirror no longer declared goes.
for d in ${MIRRORS}/*.git; do
  [ -d "$d" ] || continue
  n=$(basename "$d" .git)
  remote_line "$n" >/dev/null || { log "removing the mirror of $n (no longer declared)"; rm -rf "$d"; }
done
while read -r name mode url; do
  repo=${MIRRORS}/$name.git
  [ -d "$repo" ] || git init -q --bare "$repo"
  git -C "$repo" config remote.upstream.url "$url"
  git -C "$repo" config --replace-all remote.upstream.fetch '+refs/heads/*:refs/heads/*'
  git -C "$repo" config --add remote.upstream.fetch '+refs/tags/*:refs/tags/*'
  git -C "$repo" config core.hooksPath /config/hooks
  git -C "$repo" config receive.denyDeleteCurrent false
  git -C "$repo" config uploadpack.allowFilter true
  git -C "$repo" config bottle.mode "$mode"
  log "remote $name: $url ($mode)"
done < /config/remotes
log "serving on port ${GIT_PORT}"
exec git daemon --reuseaddr --listen=0.0.0.0 --port=${GIT_PORT} --base-path=${MIRRORS} --strict-paths --export-all \\
  --enable=receive-pack --informative-errors --access-hook=/config/access-hook --log-destination=stderr \\
  $(while read -r name mode url; do printf '%s ' "${MIRRORS}/$name.git"; done < /config/remotes)
`

/**
 * The daemon's access hook: `service path host canonical-host ip port`.
 * Its first line of output is what the agent's git prints when refused.
 */
export const ACCESS_HOOK = `#!/bin/sh
set -u
export HOME=/tmp/gate GIT_CONFIG_NOSYSTEM=1
${COMMON}
service=$1 path=$2
name=$(basename "$path" .git)
line=$(remote_line "$name") || { echo "bottle git gate: no remote named $name"; exit 1; }
mode=$(echo "$line" | cut -d' ' -f2)
upstream_env "$name"
case "$service" in
  upload-pack)
    if ! out=$(git -C "${MIRRORS}/$name.git" fetch --prune --quiet upstream 2>&1); then
      log "fetch of $name refused: cannot refresh from upstream: $(echo "$out" | tail -n 1)"
      echo "bottle git gate: cannot refresh $name from upstream (the fetch is refused, never served stale): $(echo "$out" | tail -n 1)"
      exit 1
    fi
    log "fetch of $name: refreshed from upstream" ;;
  receive-pack)
    if [ "$mode" != push ]; then
      log "push to $name refused: push is not allowed"
      echo "bottle git gate: pushing to $name is not allowed for this bottle (git.remotes[].push)"
      exit 1
    fi ;;
  *) echo "bottle git gate: $service is not offered"; exit 1 ;;
esac
exit 0
`

/**
 * pre-receive: scan, then forward upstream; any refusal refuses the whole
 * push, so nothing lands in the mirror that did not land upstream.
 */
export const PRE_RECEIVE = `#!/bin/sh
set -u
export HOME=/tmp/gate GIT_CONFIG_NOSYSTEM=1
${COMMON}
name=$(basename "$(pwd)" .git)
zero=0000000000000000000000000000000000000000
specs=""
while read -r old new ref; do
  case "$ref" in
    refs/heads/*|refs/tags/*) ;;
    *) log "push to $name refused: $ref"; echo "bottle git gate: $ref refused: only branches and tags go upstream" >&2; exit 1 ;;
  esac
  if [ "$new" = "$zero" ]; then specs="$specs :$ref"; continue; fi
  if [ "$old" = "$zero" ]; then range="$new --not --all"; else range="$old..$new"; fi
  # Every commit this push brings, its message and its changes, binary files as text.
  if ! git log -p --text --no-color --no-ext-diff --format='commit %H%n%B' $range | git secrets --scan - >/tmp/gate/scan.$$ 2>&1; then
    n=$(grep -c '^(standard input):' /tmp/gate/scan.$$ || true)
    rm -f /tmp/gate/scan.$$
    log "push to $name refused: $ref brings $n line(s) that look like a secret"
    echo "bottle git gate: push refused: $ref brings $n line(s) that look like a secret (an access key, a private key or a token); nothing was sent upstream" >&2
    exit 1
  fi
  rm -f /tmp/gate/scan.$$
  specs="$specs $new:$ref"
done
[ -n "$specs" ] || exit 0
upstream_env "$name"
if ! out=$(git push --porcelain upstream $specs 2>&1); then
  log "push to $name refused upstream: $(echo "$out" | grep -v '^To ' | tail -n 2 | tr '\\n' ' ')"
  echo "bottle git gate: upstream refused the push: $(echo "$out" | grep -v '^To ' | tail -n 2 | tr '\\n' ' ')" >&2
  exit 1
fi
log "push to $name: forwarded upstream ($specs)"
exit 0
`

/** The readiness check, run in the gate: its port accepts a connection. */
export const GATE_READY_CHECK: ReadonlyArray<string> = ["bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/${GIT_PORT}`]


