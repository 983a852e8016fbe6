#!/bin/sh
# The README's quickstart, scripted: as a plain user, create a namespace with
# `unshare --user --map-root-user --net --mount`, attach slirpd to it with
# `--configure --mtu=65520`, show the guest's tap0 and route, ping the gateway.
# Usage (as root, inside tests/sandbox.sh): tests/quickstart.sh PATH-TO-SLIRPD
set -eu
slirpd=${1:?usage: quickstart.sh PATH-TO-SLIRPD}
user=slirpd-test
id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
as_user="setpriv --reuid=$user --regid=$user --clear-groups --"

$as_user unshare --user --map-root-user --net --mount sleep 60 &
guest=$!
trap 'kill $guest 2>/dev/null || true' EXIT
sleep 0.5
echo "guest namespace: PID $guest"
ready=$(mktemp)
$as_user "$slirpd" --configure --mtu=65520 --ready-fd=3 "$guest" tap0 3>"$ready" &
daemon=$!
i=0; while [ ! -s "$ready" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
[ -s "$ready" ] || { echo "slirpd did not become ready" >&2; exit 1; }
in_guest() { $as_user nsenter --target="$guest" --user --net --mount --preserve-credentials -- "$@"; }
echo "--- inside the namespace:"
in_guest ip addr show tap0
in_guest ip route
in_guest ping -c 3 -i 0.2 10.0.2.2
kill -TERM $daemon; wait $daemon
echo "--- quickstart OK"
