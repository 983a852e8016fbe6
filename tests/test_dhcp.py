"""The DHCP server's protocol logic, frame in, frame out (the end-to-end
test with a real DHCP client on the TAP is in test_standalone.py)."""

import ipaddress
import struct

import pytest
from hypothesis import given, settings, strategies as st

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
    assert dhcp.inet_checksum(ip) == 0
    udp = frame[34:]
    sport, dport, ulen, _ = struct.unpack("!HHHH", udp[:8])
    assert (sport, dport, ulen) == (67, 68, len(udp))
    pseudo = ip[12:16] + ip[16:20] + struct.pack("!BBH", 0, 17, len(udp))
    assert dhcp.inet_checksum(pseudo + udp) == 0
    bootp = udp[8:]
    assert bootp[0] == dhcp.BOOTREPLY
    opts = dhcp.parse_options(bootp[240:])
    return {"dst_mac": frame[:6], "dst_ip": ipaddress.IPv4Address(ip[16:20]),
            "yiaddr": ipaddress.IPv4Address(bootp[16:20]), "xid": bootp[4:8], "opts": opts}


def test_discover_offer_request_ack():
    server = dhcp.DhcpServer(dhcp.slirp_settings(CFG))
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


PASTA = dhcp.Settings(server=ipaddress.IPv4Address("198.51.100.254"), mac=b"\x9a\x55" * 3,
                      network=ipaddress.IPv4Network("198.51.100.0/24"), router=ipaddress.IPv4Address("198.51.100.254"),
                      mtu=65520, address=ipaddress.IPv4Address("198.51.100.1"), lease_seconds=dhcp.LEASE_INFINITE,
                      rapid_commit=True)


def test_one_address_for_every_client():
    """pasta's model: every client gets the guest's address, for ever, and
    no DNS or search option unless the settings have some."""
    server = dhcp.DhcpServer(PASTA)
    for mac in (b"\x02\0\0\0\0\x01", b"\x02\0\0\0\0\x02"):
        offer = parse_reply(server.handle(request_frame(dhcp.DISCOVER, mac=mac)))
        assert offer["yiaddr"] == ipaddress.IPv4Address("198.51.100.1")
        assert offer["opts"][dhcp.OPT_LEASE] == b"\xff" * 4
        assert offer["opts"][dhcp.OPT_MTU] == struct.pack("!H", 65520)
        assert dhcp.OPT_DNS not in offer["opts"] and dhcp.OPT_SEARCH not in offer["opts"]
        assert dhcp.OPT_CLASSLESS_ROUTE not in offer["opts"]
    assert server.stats()["leases"] == 0


def test_router_off_the_subnet_search_and_dns():
    """A gateway outside the guest's prefix comes with option 121 (a host
    route to it, then the default via it, as pasta sends it); DNS servers
    and search domains when given; no MTU option when there is none."""
    settings = PASTA._replace(router=ipaddress.IPv4Address("203.0.113.1"), mtu=None, search=("example.org", "a.b"),
                              dns=(ipaddress.IPv4Address("192.0.2.53"), ipaddress.IPv4Address("192.0.2.54")))
    opts = parse_reply(dhcp.DhcpServer(settings).handle(request_frame(dhcp.DISCOVER)))["opts"]
    assert opts[dhcp.OPT_CLASSLESS_ROUTE] == bytes([32, 203, 0, 113, 1, 0, 0, 0, 0, 0, 203, 0, 113, 1])
    assert opts[dhcp.OPT_DNS] == bytes([192, 0, 2, 53, 192, 0, 2, 54])
    assert opts[dhcp.OPT_SEARCH] == b"\x07example\x03org\0\x01a\x01b\0"
    assert dhcp.OPT_MTU not in opts


@pytest.mark.parametrize("settings, reply", [(PASTA, dhcp.ACK), (dhcp.slirp_settings(CFG), dhcp.OFFER)])
def test_rapid_commit(settings, reply):
    """A DISCOVER asking for rapid commit (option 80): pasta's model ACKs it
    at once, saying so with option 80; slirp4netns's offers, as before."""
    got = parse_reply(dhcp.DhcpServer(settings).handle(request_frame(dhcp.DISCOVER,
                                                                     options=bytes([dhcp.OPT_RAPID_COMMIT, 0]))))
    assert got["opts"][dhcp.OPT_MSG_TYPE] == bytes([reply])
    assert (dhcp.OPT_RAPID_COMMIT in got["opts"]) == (reply == dhcp.ACK)
    if reply == dhcp.ACK:
        assert got["opts"][dhcp.OPT_RAPID_COMMIT] == b"" and got["yiaddr"] == PASTA.address


@pytest.mark.parametrize("name", ["", "a..b", "x" * 64 + ".org"])
def test_search_name_refused(name):
    with pytest.raises(ValueError):
        dhcp.encode_search([name])


def test_long_search_list_split():
    """A search list longer than one option's 255 bytes is split over
    several options of the same code (RFC 3396)."""
    names = [f"{'n' * 60}{i}.example" for i in range(6)]
    settings = PASTA._replace(search=tuple(names))
    frame = dhcp.DhcpServer(settings).handle(request_frame(dhcp.DISCOVER))
    raw, pieces, i = frame[14 + 20 + 8 + 240:], [], 0
    while raw[i] != dhcp.OPT_END:
        if raw[i] == dhcp.OPT_SEARCH:
            pieces.append(raw[i + 2:i + 2 + raw[i + 1]])
        i += 2 + raw[i + 1]
    assert len(pieces) == 2 and b"".join(pieces) == dhcp.encode_search(names)


def test_broadcast_flag_and_nak():
    server = dhcp.DhcpServer(dhcp.slirp_settings(CFG))
    offer = parse_reply(server.handle(request_frame(dhcp.DISCOVER, flags=dhcp.FLAG_BROADCAST)))
    assert offer["dst_mac"] == b"\xff" * 6 and offer["dst_ip"] == ipaddress.IPv4Address("255.255.255.255")
    nak = parse_reply(server.handle(request_frame(
        dhcp.REQUEST, options=bytes([dhcp.OPT_REQUESTED_IP, 4, 10, 0, 2, 99]))))
    assert nak["opts"][dhcp.OPT_MSG_TYPE] == bytes([dhcp.NAK])
    # a REQUEST for another server is not ours to answer
    assert server.handle(request_frame(dhcp.REQUEST, options=bytes([dhcp.OPT_SERVER_ID, 4, 10, 0, 2, 9]))) is None


def test_many_clients_distinct_leases_and_release():
    server = dhcp.DhcpServer(dhcp.slirp_settings(CFG))
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


@pytest.mark.parametrize("cidr", ["10.0.2.0/24", "10.0.0.0/8", "128.0.0.0/1"])
def test_pool_costs_nothing_until_asked(cidr):
    """Leases are made on demand: building the server for a /8 (16.7 million
    addresses) or a /1 (two billion) allocates what a /24 does, a few
    objects (it was a list of every address: 1.4 GiB and 24 s for a /8)."""
    import tracemalloc

    cfg = Config(target="1", cidr=ipaddress.IPv4Network(cidr))
    tracemalloc.start()
    try:
        server = dhcp.DhcpServer(dhcp.slirp_settings(cfg))
        allocated = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert allocated < 8192
    assert server.leases == {} and server.stats()["leases"] == 0


@pytest.mark.parametrize("cidr,first", [("10.0.0.0/8", "10.0.0.15"), ("128.0.0.0/1", "128.0.0.15")])
def test_leases_capped_in_a_large_network(cidr, first):
    """300 clients on a network with millions of addresses: 256 distinct
    leases (LEASES_MAX) from network+15 on, then counted pool_exhausted
    drops; a RELEASE frees an address that the next new client gets."""
    server = dhcp.DhcpServer(dhcp.slirp_settings(Config(target="1", cidr=ipaddress.IPv4Network(cidr))))
    macs = [b"\x02\0\0\0" + struct.pack("!H", i + 1) for i in range(300)]
    offers = [server.handle(request_frame(dhcp.DISCOVER, mac=mac)) for mac in macs]
    addrs = [parse_reply(o)["yiaddr"] for o in offers[:dhcp.LEASES_MAX]]
    assert len(set(addrs)) == dhcp.LEASES_MAX == 256
    assert min(addrs) == ipaddress.IPv4Address(first)
    assert max(addrs) == ipaddress.IPv4Address(first) + dhcp.LEASES_MAX - 1
    assert offers[dhcp.LEASES_MAX:] == [None] * (300 - dhcp.LEASES_MAX)
    assert server.drops == {"pool_exhausted": 300 - dhcp.LEASES_MAX}
    assert server.stats()["leases"] == dhcp.LEASES_MAX
    # a lease given back goes to the next client that asks
    released = addrs[10]
    assert server.handle(request_frame(dhcp.RELEASE, mac=macs[10], ciaddr=str(released))) is None
    assert server.stats()["leases"] == dhcp.LEASES_MAX - 1
    assert parse_reply(server.handle(request_frame(dhcp.DISCOVER, mac=macs[-1])))["yiaddr"] == released
    assert server.handle(request_frame(dhcp.DISCOVER, mac=macs[10])) is None  # full again
    # a RELEASE of an address that is not the client's changes nothing
    server.handle(request_frame(dhcp.RELEASE, mac=macs[0], ciaddr=str(addrs[1])))
    assert server.leases[macs[0]] == addrs[0] and server.stats()["leases"] == dhcp.LEASES_MAX


def test_released_addresses_are_reused_lowest_first():
    """In a /24 (240 addresses from .15) the pool runs out before the cap;
    released addresses come back lowest first."""
    server = dhcp.DhcpServer(dhcp.slirp_settings(CFG))
    macs = [b"\x02\0\0\1" + struct.pack("!H", i) for i in range(241)]
    for mac in macs[:240]:
        assert server.handle(request_frame(dhcp.DISCOVER, mac=mac)) is not None
    assert server.handle(request_frame(dhcp.DISCOVER, mac=macs[240])) is None
    for i in (50, 20):
        server.handle(request_frame(dhcp.RELEASE, mac=macs[i], ciaddr=f"10.0.2.{15 + i}"))
    assert parse_reply(server.handle(request_frame(dhcp.DISCOVER, mac=macs[240])))["yiaddr"] == \
        ipaddress.IPv4Address("10.0.2.35")


def test_inform():
    server = dhcp.DhcpServer(dhcp.slirp_settings(CFG))
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
    server = dhcp.DhcpServer(dhcp.slirp_settings(CFG))
    assert server.handle(frame) is None
    assert server.drops == {reason: 1}


def test_lying_udp_length():
    frame = bytearray(request_frame(dhcp.DISCOVER))
    struct.pack_into("!H", frame, 14 + 20 + 4, 60000)
    server = dhcp.DhcpServer(dhcp.slirp_settings(CFG))
    assert server.handle(bytes(frame)) is None
    assert server.drops == {"truncated": 1}


@st.composite
def dhcp_frames(draw):
    """A DHCP request with every field drawn (message type, flags, client
    MAC, addresses, options of any code and length), then, one time in eight
    each, its end option left out, its cookie, IP or UDP header length
    changed, a few bytes flipped, or the frame cut."""
    def sometimes():
        return draw(st.integers(0, 7)) == 0

    options = b"".join(bytes([code, len(value)]) + value for code, value in draw(st.lists(
        st.tuples(st.integers(1, 254), st.binary(max_size=8)), max_size=6)))
    if draw(st.booleans()):
        options += bytes([dhcp.OPT_REQUESTED_IP, 4]) + draw(st.sampled_from([bytes([10, 0, 0, 15])])
                                                            | st.binary(min_size=4, max_size=4))
    if draw(st.booleans()):
        options += bytes([dhcp.OPT_SERVER_ID, 4]) + draw(st.sampled_from([bytes([10, 0, 0, 2]), b"\0" * 4]))
    kind = draw(st.sampled_from([dhcp.DISCOVER, dhcp.REQUEST, dhcp.RELEASE, dhcp.INFORM, dhcp.DECLINE])
                | st.integers(0, 255))
    frame = bytearray(request_frame(
        kind, mac=draw(st.sampled_from([b"\x02\0\0\0\0\1", b"\x02\0\0\0\0\2"]) | st.binary(min_size=6, max_size=6)),
        ciaddr=str(ipaddress.IPv4Address(draw(st.sampled_from([0, 0x0A00000F, 0x0A000010]) | st.integers(0, 2**32 - 1)))),
        flags=draw(st.sampled_from([0, dhcp.FLAG_BROADCAST]) | st.integers(0, 0xFFFF)),
        options=options, end=not sometimes(),
        cookie=draw(st.binary(min_size=4, max_size=4)) if sometimes() else dhcp.MAGIC))
    if sometimes():
        frame[14] = 0x40 | draw(st.integers(0, 15))  # the IP header's length
    if sometimes():
        struct.pack_into("!H", frame, 14 + 20 + 4, draw(st.integers(0, 0xFFFF)))  # the UDP length
    if sometimes():
        for _ in range(draw(st.integers(1, 3))):
            frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    return bytes(frame[:draw(st.integers(0, len(frame)))]) if sometimes() else bytes(frame)


@settings(max_examples=1000, deadline=None)
@given(frames=st.lists(dhcp_frames() | st.binary(max_size=600), min_size=1, max_size=8))
def test_any_frame_is_a_reply_or_a_counted_drop(frames):
    """Whatever a guest sends to port 67, handle() returns a well-formed
    reply (checksums right) or None, and every drop is counted under a
    reason the code names, never "unexpected" (nothing raised)."""
    server = dhcp.DhcpServer(dhcp.slirp_settings(Config(target="1", cidr=ipaddress.IPv4Network("10.0.0.0/8"))))
    for frame in frames:
        reply = server.handle(frame)
        if reply is not None:
            assert parse_reply(reply)["xid"] == frame[14 + (frame[14] & 0x0F) * 4 + 8 + 4:][:4]
    assert "unexpected" not in server.drops
    assert len(server.leases) <= dhcp.LEASES_MAX


def test_a_bug_is_a_counted_drop(monkeypatch):
    """If parsing raised anyway, the frame is dropped and counted as
    "unexpected": nothing reaches the data plane's thread."""
    def broken(_data):
        raise IndexError("a bug")

    monkeypatch.setattr(dhcp, "parse_options", broken)
    server = dhcp.DhcpServer(dhcp.slirp_settings(CFG))
    assert server.handle(request_frame(dhcp.DISCOVER)) is None
    assert server.drops == {"unexpected": 1}


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


@pytest.mark.daemon
def test_slirp_forwarder_example_with_udhcpc(plain_user, user_tmp):
    """The slirp-forwarder README: slirpd keeps a namespace bound to a file and
    the guest configures itself with DHCP, then fetches a file from the host."""
    import hashlib
    import http.server
    import os
    import shlex
    import subprocess
    import threading

    from lib.harness import as_user, slirpd_argv

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

    from lib.api import api

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
    from lib.harness import wait_for

    stats = wait_for(lambda: (st := json.loads(api(path, '{"execute": "get_stats"}'))["return"])
                     ["dhcp"]["drops"].get("truncated") and st, 10, "the drops to be counted")
    assert stats["dhcp"]["drops"] == {"bad_magic_cookie": 1, "truncated": 1}
    assert stats["counters"]["ctl_frames"] == 2
    assert net_guest.run("ping -c 1 -W 2 10.0.2.2", check=False).returncode == 0


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "128.0.0.0/1"])
def test_daemon_with_a_large_network(guest, start_slirpd, user_tmp, cidr):
    """A daemon for a /8 or a /1 starts as a /24's does (the /8 took 24 s
    and 1.4 GiB, the /1 could not start), its memory within 2 MiB of a
    /24's, and serves the guest."""
    import json

    from lib.api import api

    small = start_slirpd("--api-socket=" + str(user_tmp / "small.sock"), "-c", str(guest.pid), "tap1")
    path = str(user_tmp / "api.sock")
    large = start_slirpd(f"--cidr={cidr}", f"--api-socket={path}", "-c", str(guest.pid))
    assert large.rss_kib() - small.rss_kib() < 2048
    gateway = ipaddress.IPv4Network(cidr).network_address + 2
    assert guest.run(f"ping -c 1 -W 2 {gateway}", check=False).returncode == 0
    stats = json.loads(api(path, '{"execute": "get_stats"}'))["return"]["dhcp"]
    assert stats == {"replies": 0, "leases": 0, "leases_max": dhcp.LEASES_MAX, "drops": {}}


@pytest.mark.parametrize("argv, dns", [
    ([], ()), (["--dhcp-dns"], ("198.51.100.254",)), (["--dhcp-dns", "--no-map-gw"], ()),
    (["--dhcp-dns", "-D", "192.0.2.53"], ("192.0.2.53",)), (["--dhcp-dns", "-D", "none"], ())])
def test_pasta_settings(argv, dns):
    """pasta's DHCP from its command line (pasta/net.py): the guest's one
    address, the gateway; DNS only with --dhcp-dns, the host's loopback
    resolver (127.0.0.53) as the mapped gateway (none unmapped) or -D's."""
    from slirpd.netmodel import GuestNetwork
    from slirpd.pasta import cli, net

    args = cli.parse([*argv, "--netns", "/x"])
    network = GuestNetwork(guest4=ipaddress.IPv4Interface("198.51.100.1/24"),
                           gateway4=ipaddress.IPv4Address("198.51.100.254"), mac=b"\x9a\x55" * 3)
    setup = net.Setup("eth0", True, 65520, None, network.guest4, None, [], [])
    settings = net.dhcp_settings(args, network, setup, (ipaddress.IPv4Address("127.0.0.53"), None))
    assert settings.address == network.guest4.ip and settings.router == settings.server == network.gateway4
    assert settings.dns == tuple(map(ipaddress.IPv4Address, dns))
    assert settings.lease_seconds == dhcp.LEASE_INFINITE and settings.mtu == 65520 and settings.rapid_commit
    assert net.dhcp_settings(cli.parse(["--no-dhcp", "--netns", "/x"]), network, setup, (None, None)) is None
    assert net.dhcp_settings(args, network._replace(gateway4=None), setup, (None, None)) is None
