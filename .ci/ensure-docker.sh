#!/usr/bin/env bash
# Makes sure a Docker Engine answers on the default socket (or DOCKER_HOST).
# Installs Debian's docker.io and starts dockerd in the background when none does.
set -euo pipefail

engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if engine_up; then echo "docker engine: already answering"; exit 0; fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v busybox >/dev/null 2>&1; then
  echo "docker engine: installing docker.io and busybox-static from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io busybox-static iproute2 >/dev/null
fi

echo "docker engine: starting dockerd"
mkdir -p /var/log
# From /, not from this checkout: the daemon outlives it.
(cd / && exec nohup dockerd >/var/log/dockerd.log 2>&1) &
for _ in $(seq 1 60); do
  if engine_up; then echo "docker engine: up ($(docker version --format '{{.Server.Version}}'))"; exit 0; fi
  sleep 1
done
echo "docker engine: dockerd did not answer within 60s; its log:" >&2
tail -n 40 /var/log/dockerd.log >&2 || true
exit 1
