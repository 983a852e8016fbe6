#!/bin/sh
# Run a command inside the sealed sandbox that every test and benchmark uses:
# a fresh network namespace with only lo and a veth uplink whose peer goes
# nowhere (default routes point into it), and a private mount namespace.
# Anything that leaks out of a guest lands on up0 and goes nowhere.
# Usage: tests/sandbox.sh COMMAND [ARGS]...   (as root)
set -eu
if [ "$(id -u)" != 0 ]; then
  echo "tests/sandbox.sh: must run as root (it creates the sandbox namespace)" >&2
  exit 2
fi
exec unshare --net --mount --propagation private -- sh -euc '
  ip link set lo up
  ip link add up0 type veth peer name up0peer
  ip link set up0 up
  ip link set up0peer up
  ip addr add 198.51.100.1/24 dev up0
  ip route add default via 198.51.100.254
  ip -6 addr add 2001:db8::1/64 dev up0 nodad
  ip -6 route add default via 2001:db8::fe
  chmod 0666 /dev/net/tun   # distros ship 0666; this machine ships 0600
  export SLIRPD_SANDBOX=1
  exec "$@"' sandbox "$@"
