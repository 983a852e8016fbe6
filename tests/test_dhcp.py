"""The DHCP server's protocol logic, frame in, frame out (the end-to-end
test with a real DHCP client on the TAP is in test_standalone.py)."""

import ipaddress
import struct

import pytest

from slirpd import dhcp
from slirpd.config import Config

CFG = Config(target="1")


def request_frame(kind, mac=b"\x02\0\0\0\0\x01", xid=b"\x11\x22\x33\x44", ciaddr="0.0.0.0", flags=0, options=b"",
                  cookie=dhcp.MAGIC, end=True):
    opts = bytes([dhcp.OPT_MSG_TYPE, 1, kind]) + options + (bytes([dhcp.OPT_END]) if end else b"")
    bootp = struct.pack("!BBBB4sHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, flags,
                        ipaddress.IPv4Address(ciaddr).packed, b"\0" * 4, b"\0" * 4, b"\0" * 4, mac, b"", b"")
    bootp += cookie + opts
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\0" * 4, b"\xff" * 4)
    return b"\xff" * 6 + mac + b"\x08\x00" + ip + udp


def parse_reply(frame):
    assert frame[12:14] == b"\x08\x00"
    ip = frame[14:34]
    assert dhcp._csum(ip) == 0
    udp = frame[34:]
    sport, dport, ulen, _ = struct.unpack("!HHHH", udp[:8])
    assert (sport, dport, ulen) == (67, 68, len(udp))
    pseudo = ip[12:16] + ip[16:20] + struct.pack("!BBH", 0, 17, len(udp))
    assert dhcp._csum(pseudo + udp) == 0
    bootp = udp[8:]
    assert bootp[0] == dhcp.BOOTREPLY
    opts = dhcp.parse_options(bootp[240:])
    return {"dst_mac": frame[:6], "dst_ip": ipaddress.IPv4Address(ip[16:20]),
            "yiaddr": ipaddress.IPv4Address(bootp[16:20]), "xid": bootp[4:8], "opts": opts}


def test_discover_offer_request_ack():
    server = dhcp.DhcpServer(CFG)
    offer = parse_reply(server.handle(request_frame(dhcp.DISCOVER)))
    assert offer["opts"][dhcp.OPT_MSG_TYPE] == bytes([dhcp.OFFER])
    assert offer["yiaddr"] == ipaddress.IPv4Address("10.0.2.15")
    assert offer["xid"] == b"\x11\x22\x33\x44"
    assert offer["opts"][dhcp.OPT_ROUTER] == ipaddress.IPv4Address("10.0.2.2").packed
    assert offer["opts"][dhcp.OPT_DNS] == ipaddress.IPv4Address("10.0.2.3").packed
    assert offer["opts"][dhcp.OPT_MASK] == ipaddress.IPv4Address("255.255.255.0").packed
    assert offer["opts"][dhcp.OPT_MTU] == struct.pack("!H", 1500)
    assert offer["opts"][dhcp.OPT_SERVER_ID] == ipaddress.IPv4Address("10.0.2.2").packed
    assert struct.unpack("!I", offer["opts"][dhcp.OPT_LEASE])[0] == dhcp.LEASE_SECONDS
    ack = parse_reply(server.handle(request_frame(
        dhcp.REQUEST, options=bytes([dhcp.OPT_REQUESTED_IP, 4]) + bytes([10, 0, 2, 15]) +
        bytes([dhcp.OPT_SERVER_ID, 4]) + bytes([10, 0, 2, 2]))))
    assert ack["opts"][dhcp.OPT_MSG_TYPE] == bytes([dhcp.ACK])
    assert ack["yiaddr"] == ipaddress.IPv4Address("10.0.2.15")
    assert ack["dst_mac"] == b"\x02\0\0\0\0\x01" and ack["dst_ip"] == ipaddress.IPv4Address("10.0.2.15")


def test_broadcast_flag_and_nak():
    server = dhcp.DhcpServer(CFG)
    offer = parse_reply(server.handle(request_frame(dhcp.DISCOVER, flags=dhcp.FLAG_BROADCAST)))
    assert offer["dst_mac"] == b"\xff" * 6 and offer["dst_ip"] == ipaddress.IPv4Address("255.255.255.255")
    nak = parse_reply(server.handle(request_frame(
        dhcp.REQUEST, options=bytes([dhcp.OPT_REQUESTED_IP, 4, 10, 0, 2, 99]))))
    assert nak["opts"][dhcp.OPT_MSG_TYPE] == bytes([dhcp.NAK])
    # a REQUEST for another server is not ours to answer
    assert server.handle(request_frame(dhcp.REQUEST, options=bytes([dhcp.OPT_SERVER_ID, 4, 10, 0, 2, 9]))) is None


def test_many_clients_distinct_leases_and_release():
    server = dhcp.DhcpServer(CFG)
    addrs = set()
    for i in range(200):
        mac = b"\x02\0\0\0" + struct.pack("!H", i + 1)
        addrs.add(parse_reply(server.handle(request_frame(dhcp.DISCOVER, mac=mac)))["yiaddr"])
    assert len(addrs) == 200
    assert min(addrs) == ipaddress.IPv4Address("10.0.2.15")
    assert ipaddress.IPv4Address("10.0.2.2") not in addrs and ipaddress.IPv4Address("10.0.2.3") not in addrs
    # the same client keeps its lease
    assert parse_reply(server.handle(request_frame(dhcp.DISCOVER, mac=b"\x02\0\0\0\0\x01")))["yiaddr"] == \
        ipaddress.IPv4Address("10.0.2.15")
    server.handle(request_frame(dhcp.RELEASE, mac=b"\x02\0\0\0\0\x01", ciaddr="10.0.2.15"))
    assert b"\x02\0\0\0\0\x01" not in server.leases
    # the pool runs out: counted, not a crash
    for i in range(300):
        server.handle(request_frame(dhcp.DISCOVER, mac=b"\x02\0\0\1" + struct.pack("!H", i)))
    assert server.drops["pool_exhausted"] > 0


def test_inform():
    server = dhcp.DhcpServer(CFG)
    ack = parse_reply(server.handle(request_frame(dhcp.INFORM, ciaddr="10.0.2.50")))
    assert ack["opts"][dhcp.OPT_MSG_TYPE] == bytes([dhcp.ACK])
    assert dhcp.OPT_LEASE not in ack["opts"]
    assert ack["dst_ip"] == ipaddress.IPv4Address("10.0.2.50")


@pytest.mark.parametrize("frame,reason", [
    (request_frame(dhcp.DISCOVER)[:100], "truncated"),
    (request_frame(dhcp.DISCOVER)[:20], "truncated"),
    (request_frame(dhcp.DISCOVER, cookie=b"\0\0\0\0"), "bad_magic_cookie"),
    (request_frame(dhcp.DISCOVER, options=bytes([12, 200, 1, 2])), "option_overflow"),
    (request_frame(dhcp.DISCOVER, end=False), "no_end_option"),
    (request_frame(dhcp.DISCOVER, mac=b"\x01\0\0\0\0\x01"), "bad_client_mac"),
    (request_frame(99), "unknown_message_type"),
])
def test_malformed_counted(frame, reason):
    server = dhcp.DhcpServer(CFG)
    assert server.handle(frame) is None
    assert server.drops == {reason: 1}


def test_lying_udp_length():
    frame = bytearray(request_frame(dhcp.DISCOVER))
    struct.pack_into("!H", frame, 14 + 20 + 4, 60000)
    server = dhcp.DhcpServer(CFG)
    assert server.handle(bytes(frame)) is None
    assert server.drops == {"truncated": 1}


UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc calls this with deconfig/bound/renew; we configure like its default script
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route add default via "$router" dev "$interface"
    echo "ip=$ip mask=$mask router=$router dns=$dns mtu=$mtu" > "$RESULT" ;;
esac
"""


def test_slirp_forwarder_example_with_udhcpc(plain_user, user_tmp):
    """The slirp-forwarder README: slirpd keeps a namespace bound to a file and
    the guest configures itself with DHCP, then fetches a file from the host."""
    import hashlib
    import http.server
    import os
    import shlex
    import subprocess
    import threading

    from conftest import as_user, slirpd_argv

    payload = os.urandom(4 << 20)
    (user_tmp / "file.bin").write_bytes(payload)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(user_tmp))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = user_tmp / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    net, ready, result = user_tmp / "net", user_tmp / "ready", user_tmp / "result"
    shell = f"""
        set -e
        touch {net}
        {shlex.join(slirpd_argv(f'--create-netns={net}'))} --ready-fd=3 3>{ready} &
        daemon=$!
        i=0; while [ ! -s {ready} ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        unset LD_PRELOAD  # make test-asan's runtimes are for slirpd: curl deadlocks under them
        RESULT={result} nsenter --net={net} busybox udhcpc -i tap0 -q -n -t 5 -T 1 -s {script} >/dev/null 2>&1
        cat {result}
        nsenter --net={net} ip route show default
        nsenter --net={net} curl -sf -o - http://10.0.2.2:{server.server_address[1]}/file.bin | sha256sum
        kill $daemon; wait $daemon
    """
    try:
        res = subprocess.run(["unshare", "-mr", "sh", "-c", shell], capture_output=True, text=True, timeout=90,
                             **as_user(plain_user))
    finally:
        server.shutdown()
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "ip=10.0.2.15 mask=24 router=10.0.2.2 dns=10.0.2.3 mtu=1500"
    assert lines[1].startswith("default via 10.0.2.2 dev tap0")
    assert lines[2].split()[0] == hashlib.sha256(payload).hexdigest()


def test_malformed_dhcp_on_the_wire_counted(net_guest, start_slirpd, user_tmp):
    """Bad DHCP packets from a real guest are dropped and counted; the daemon
    keeps answering."""
    import json

    from test_api import api

    net_guest.slirpd.stop()
    path = str(user_tmp / "api.sock")
    start_slirpd("-c", f"--api-socket={path}", str(net_guest.pid))
    bad = request_frame(dhcp.DISCOVER, cookie=b"\0\0\0\0")[14 + 20 + 8:]  # the BOOTP payload
    net_guest.python(f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind(("0.0.0.0", 68))
for payload in ({bad!r}, b"short"):
    s.sendto(payload, ("255.255.255.255", 67))
""")
    from conftest import wait_for

    stats = wait_for(lambda: (st := json.loads(api(path, '{"execute": "get_stats"}'))["return"])
                     ["dhcp"]["drops"].get("truncated") and st, 10, "the drops to be counted")
    assert stats["dhcp"]["drops"] == {"bad_magic_cookie": 1, "truncated": 1}
    assert stats["counters"]["ctl_frames"] == 2
    assert net_guest.run("ping -c 1 -W 2 10.0.2.2", check=False).returncode == 0
