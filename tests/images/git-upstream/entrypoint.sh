#!/bin/sh
# git-upstream: sshd in the foreground, logging to stderr.
set -eu
for f in /etc/upstream/ssh_host_ed25519_key /etc/upstream/authorized_keys; do
  [ -s "$f" ] || { echo "git-upstream: $f is missing or empty (mount it)" >&2; exit 1; }
done
# sshd reads authorized_keys as the user logging in, so git (1001) must be able
# to; otherwise every login fails with only "Permission denied (publickey)".
setpriv --reuid=1001 --regid=1001 --clear-groups test -r /etc/upstream/authorized_keys || {
  echo "git-upstream: /etc/upstream/authorized_keys is not readable by uid 1001 (make it mode 0644)" >&2
  exit 1
}
mkdir -p /run/sshd
chmod 0755 /run/sshd
exec /usr/sbin/sshd -D -e "$@"
