#!/usr/bin/env bash
# Makes sure a rootful Podman answers the Docker-compatible API on a private
# socket (default /run/bottle-podman/podman.sock; BOTTLE_PODMAN_SOCKET
# overrides it), for testing bottle against Podman. Idempotent:
#   1. installs Debian's podman (with netavark, aardvark-dns, ...) if missing;
#   2. writes a private containers.conf (CONTAINERS_CONF for every podman this
#      script runs): ulimits within this machine's limits, cgroupfs, file events;
#   3. starts `podman system service` on the socket in the background when
#      nothing answers there, and waits for it;
#   4. lets same-bridge traffic through on Podman's bridges where Docker's
#      FORWARD policy (DROP) would drop it (an ACCEPT rule in DOCKER-USER);
#   5. loads the local test images from Docker into Podman.
# Never stops, restarts or reconfigures Docker. Prints one line per step and,
# last, the socket path.
set -euo pipefail
cd "$(dirname "$0")/.."

SOCK="${BOTTLE_PODMAN_SOCKET:-/run/bottle-podman/podman.sock}"
case "$SOCK" in unix://*) SOCK="${SOCK#unix://}" ;; esac
case "$SOCK" in /*) ;; *) echo "podman: BOTTLE_PODMAN_SOCKET must be an absolute path, got '$SOCK'" >&2; exit 1 ;; esac
RUNDIR="$(dirname "$SOCK")"
CONF="${BOTTLE_PODMAN_CONF:-/etc/bottle-podman/containers.conf}"
LOG="${BOTTLE_PODMAN_LOG:-/var/log/bottle-podman.log}"
export CONTAINERS_CONF="$CONF"

# 1. packages ---------------------------------------------------------------
need=()
for p in podman netavark aardvark-dns slirp4netns uidmap catatonit conmon iptables curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "podman: installing ${need[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  apt_log=$(mktemp)
  if ! { apt-get update -qq && apt-get install -y -qq "${need[@]}"; } >"$apt_log" 2>&1; then
    echo "podman: apt-get failed; its output:" >&2; tail -n 40 "$apt_log" >&2; rm -f "$apt_log"; exit 1
  fi
  rm -f "$apt_log"
else
  echo "podman: packages already installed ($(podman --version))"
fi

# 2. private containers.conf --------------------------------------------------
# This machine cannot raise its open-files limit, and podman caps its own
# RLIMIT_NPROC at 32768: runc fails ("error setting rlimits") if the container
# asks for more than podman has, so ask for exactly what is there.
limit() { local v; v=$(ulimit "$1" -H); [ "$v" = unlimited ] && v=$2; [ "$v" -gt "$2" ] && v=$2; echo "$v"; }
nofile=$(limit -n 1048576)
nproc=$(limit -u 32768)
mkdir -p "$(dirname "$CONF")"
conf_text="# Written by bottle's .ci/ensure-podman.sh; rewritten on every run.
[containers]
default_ulimits = [\"nofile=${nofile}:${nofile}\", \"nproc=${nproc}:${nproc}\"]

[engine]
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"

[network]
network_backend = \"netavark\""
if [ -f "$CONF" ] && [ "$(cat "$CONF")" = "$conf_text" ]; then
  echo "podman: containers.conf unchanged at $CONF"
else
  printf '%s\n' "$conf_text" >"$CONF.tmp" && mv "$CONF.tmp" "$CONF"
  echo "podman: wrote $CONF (nofile=$nofile, nproc=$nproc, cgroupfs, file events)"
fi

# 3. the service ----------------------------------------------------------------
answers() { [ -S "$SOCK" ] && [ "$(curl -s -m 5 --unix-socket "$SOCK" http://d/_ping 2>/dev/null)" = OK ]; }
# A service started from a checkout that is gone since (an earlier clone's CI run) answers, but conmon cannot
# start containers from a deleted working directory ("Failed to get working directory"): it is started anew.
pidfile="$RUNDIR/podman-service.pid"
if answers && [ -f "$pidfile" ] \
    && readlink "/proc/$(cat "$pidfile")/cwd" 2>/dev/null | grep -q ' (deleted)$'; then
  echo "podman: the running service's working directory is gone; restarting it"
  kill "$(cat "$pidfile")" 2>/dev/null || true
  for _ in $(seq 1 20); do answers || break; sleep 0.5; done
fi
if answers; then
  echo "podman: service already answering on $SOCK"
else
  mkdir -p "$RUNDIR"
  rm -f "$SOCK"
  echo "podman: starting rootful 'podman system service' on $SOCK (log: $LOG)"
  # From /, not from this checkout: the service outlives it.
  (cd / && exec nohup setsid podman system service --time=0 "unix://$SOCK" >>"$LOG" 2>&1 </dev/null) &
  echo $! >"$pidfile"
  up=""
  for _ in $(seq 1 60); do if answers; then up=1; break; fi; sleep 1; done
  if [ -z "$up" ]; then
    echo "podman: the service did not answer on $SOCK within 60s; its log:" >&2
    tail -n 40 "$LOG" >&2 || true
    exit 1
  fi
fi
ver=$(curl -s --unix-socket "$SOCK" http://d/v1.41/version | sed -n 's/.*"Name":"Podman Engine","Version":"\([^"]*\)".*/\1/p')
[ -n "$ver" ] || { echo "podman: something answers on $SOCK but it is not Podman (no 'Podman Engine' in /version)" >&2; exit 1; }
echo "podman: Podman $ver answers (compat API v1.41)"

# 4. firewall -------------------------------------------------------------------
# Docker sets FORWARD's policy to DROP and loads br_netfilter, so frames between
# two containers on one Podman bridge pass through iptables' FORWARD chain.
# netavark adds no rules for internal networks, so an agent could not reach its
# egress proxy. Accept only bridged traffic that stays on one podman bridge.
rule=(-i podman+ -o podman+ -m physdev --physdev-is-bridged -m comment --comment "bottle: same-bridge traffic on podman networks" -j ACCEPT)
if ! command -v iptables >/dev/null 2>&1; then
  echo "firewall: no iptables; nothing to do"
elif iptables -S DOCKER-USER >/dev/null 2>&1; then
  if iptables -C DOCKER-USER "${rule[@]}" 2>/dev/null; then echo "firewall: DOCKER-USER already accepts same-bridge podman traffic"
  else iptables -I DOCKER-USER 1 "${rule[@]}"; echo "firewall: inserted ACCEPT for same-bridge podman traffic into DOCKER-USER"; fi
elif iptables -S FORWARD 2>/dev/null | grep -q '^-P FORWARD DROP'; then
  if iptables -C FORWARD "${rule[@]}" 2>/dev/null; then echo "firewall: FORWARD already accepts same-bridge podman traffic"
  else iptables -I FORWARD 1 "${rule[@]}"; echo "firewall: inserted ACCEPT for same-bridge podman traffic into FORWARD"; fi
else
  echo "firewall: FORWARD policy accepts; nothing to do"
fi

# 5. images -----------------------------------------------------------------------
docker_up() { command -v docker >/dev/null 2>&1 && docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
if docker_up && ! docker image inspect bottle-local/agent:latest >/dev/null 2>&1 && [ -f scripts/local-images.sh ]; then
  echo "images: bottle-local/agent:latest missing in Docker; making the local images"
  bash scripts/local-images.sh
fi
for img in bottle-local/agent:latest bottle-local/mitmproxy:latest; do
  if ! docker_up || ! did=$(docker image inspect --format '{{.Id}}' "$img" 2>/dev/null); then
    [ "$img" = bottle-local/agent:latest ] && echo "images: $img is not in Docker; cannot load it into Podman" >&2
    continue
  fi
  pid=$(podman image inspect --format '{{.Id}}' "localhost/$img" 2>/dev/null || true)
  if [ "sha256:${pid#sha256:}" = "$did" ]; then
    echo "images: $img already in Podman (${did:7:12})"
  else
    docker save "$img" | podman load -q >/dev/null
    echo "images: loaded $img into Podman as localhost/$img"
  fi
done
podman image inspect localhost/bottle-local/agent:latest >/dev/null 2>&1 || { echo "images: localhost/bottle-local/agent:latest is not in Podman" >&2; exit 1; }

echo "podman socket: $SOCK"
