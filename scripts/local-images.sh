#!/usr/bin/env bash
# Makes a small local image from the host's static busybox, with `docker
# import` (no registry needed), for the demo spec and the tests:
#   bottle-local/agent:latest   an "agent" that sleeps; has sh, wget, nc, httpd
# The egress proxy and the probes run in bottle-local/mitmproxy:latest, made
# by scripts/debian-images.sh. Real bottles use a real agent image.
set -euo pipefail
AGENT=bottle-local/agent:latest
if [ "${1:-}" != "--force" ] && docker image inspect "$AGENT" >/dev/null 2>&1; then exit 0; fi
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "busybox not found: apt-get install busybox-static" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
root="$work/root"; mkdir -p "$root/bin" "$root/tmp" "$root/workspace"
cp "$(readlink -f "$busybox")" "$root/bin/busybox"
for a in sh ls cat wget nc sleep echo env ip httpd mkdir cp id true false ps grep cut head timeout; do ln -s busybox "$root/bin/$a"; done
tar -C "$root" -cf "$work/rootfs.tar" .
docker import --change 'ENV PATH=/bin' --change 'CMD ["sleep", "2147483647"]' "$work/rootfs.tar" "$AGENT" >/dev/null
echo "local images: $AGENT"
