#!/usr/bin/env bash
# Makes two small local images from the host's static busybox, with `docker
# import` (no registry needed), for the demo spec and the tests:
#   bottle-local/agent:latest   an "agent" that sleeps; has sh, wget, nc
#   bottle-local/egress:latest  a stand-in for pipelock: takes pipelock's
#                               arguments and serves the rendered config on
#                               :8888 (/config.yaml), proxying nothing.
# Real bottles use real agent images and pipelock's published image.
set -euo pipefail
AGENT=bottle-local/agent:latest
EGRESS=bottle-local/egress:latest
if [ "${1:-}" != "--force" ] && docker image inspect "$AGENT" "$EGRESS" >/dev/null 2>&1; then exit 0; fi
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "busybox not found: apt-get install busybox-static" >&2; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
root="$work/root"; mkdir -p "$root/bin" "$root/tmp" "$root/workspace" "$root/config"
cp "$(readlink -f "$busybox")" "$root/bin/busybox"
for a in sh ls cat wget nc sleep echo env ip httpd mkdir cp id true false ps grep cut head timeout; do ln -s busybox "$root/bin/$a"; done
cat > "$root/bin/fake-pipelock" <<'SH'
#!/bin/sh
# Stand-in for pipelock: accepts `run --listen ADDR --config FILE`; serves FILE at /config.yaml on :8888.
config=/config/pipelock.yaml
while [ $# -gt 0 ]; do case "$1" in --config) config="$2"; shift;; esac; shift; done
mkdir -p /tmp/www && cp "$config" /tmp/www/config.yaml && echo ok > /tmp/www/health
exec httpd -f -p 0.0.0.0:8888 -h /tmp/www
SH
chmod 755 "$root/bin/fake-pipelock"
tar -C "$root" -cf "$work/rootfs.tar" .
docker import --change 'ENV PATH=/bin' --change 'CMD ["sleep", "2147483647"]' "$work/rootfs.tar" "$AGENT" >/dev/null
docker import --change 'ENV PATH=/bin' --change 'ENTRYPOINT ["/bin/fake-pipelock"]' "$work/rootfs.tar" "$EGRESS" >/dev/null
echo "local images: $AGENT $EGRESS"
