"""The DHCPv6 server's protocol logic (pasta's model), frame in, frame out
(a real client, busybox udhcpc6, against it and Debian's pasta side by side
is test_pasta_cli.py's test_dhcpv6_alike)."""

import ipaddress
import struct

import pytest
from hypothesis import given, settings, strategies as st

from slirpd import dhcpv6
from slirpd.dhcp import inet_checksum

MAC = b"\x9a\x55\x9a\x55\x9a\x55"
GUEST_MAC = b"\x02\0\0\0\0\x01"
GUEST_LL = ipaddress.IPv6Address("fe80::1")
ADDRESS = ipaddress.IPv6Address("2001:db8::1")
CLIENT_ID = b"\0\x03\0\x01" + GUEST_MAC
XID = b"\x12\x34\x56"
STARTED = dhcpv6.EPOCH_2000 + 1000
SETTINGS = dhcpv6.Settings(mac=MAC, address=ADDRESS, dns=(ipaddress.IPv6Address("2001:db8::53"),),
                           search=("example.org", "."))
SERVER_ID = struct.pack("!HHI", 1, 1, 1000) + MAC


def opt(code, value):
    return struct.pack("!HH", code, len(value)) + value


def ia_na(iaid=b"\0\0\0\x07", *addrs):
    return opt(dhcpv6.OPT_IA_NA, iaid + b"\0" * 8 + b"".join(
        opt(dhcpv6.OPT_IAADDR, ipaddress.IPv6Address(a).packed + b"\0" * 8) for a in addrs))


def frame(kind, options=b"", src=GUEST_LL, udp_len=None):
    msg = bytes([kind]) + XID + options
    udp = struct.pack("!HHHH", 546, 547, len(msg) + 8 if udp_len is None else udp_len, 0) + msg
    ip = struct.pack("!IHBB", 6 << 28, len(udp), 17, 1) + src.packed + ipaddress.IPv6Address("ff02::1:2").packed
    return b"\x33\x33\0\x01\0\x02" + GUEST_MAC + b"\x86\xdd" + ip + udp


def server():
    return dhcpv6.Dhcpv6Server(SETTINGS, started=STARTED)


def parse_reply(reply):
    """The reply's message type, xid and options, after checking its
    headers: to the client's MAC and link-local address, from ours, port
    547 to 546, the UDP checksum right."""
    assert reply[:6] == GUEST_MAC and reply[6:12] == MAC and reply[12:14] == b"\x86\xdd"
    ip, udp = reply[14:54], reply[54:]
    assert ip[0] >> 4 == 6 and struct.unpack("!H", ip[4:6])[0] == len(udp) and ip[6] == 17
    assert ip[8:24] == dhcpv6.LINK_LOCAL.packed and ip[24:40] == GUEST_LL.packed
    assert struct.unpack("!HHH", udp[:6]) == (547, 546, len(udp))
    assert inet_checksum(ip[8:40] + struct.pack("!IxxxB", len(udp), 17) + udp) == 0
    return udp[8], udp[9:12], dhcpv6.parse_options(udp[12:])


@pytest.mark.parametrize(("kind", "options", "reply_kind"), [
    (dhcpv6.SOLICIT, ia_na(), dhcpv6.ADVERTISE),
    (dhcpv6.REQUEST, opt(dhcpv6.OPT_SERVERID, SERVER_ID) + ia_na(b"\0\0\0\x07", ADDRESS), dhcpv6.REPLY),
    (dhcpv6.RENEW, opt(dhcpv6.OPT_SERVERID, SERVER_ID) + ia_na(), dhcpv6.REPLY),
    (dhcpv6.REBIND, ia_na(), dhcpv6.REPLY),
    (dhcpv6.CONFIRM, ia_na(b"\0\0\0\x07", ADDRESS), dhcpv6.REPLY)])
def test_address_given(kind, options, reply_kind):
    """Each message gets our DUID-LLT, the IA_NA (the client's IAID) with
    the guest's address for ever, the client's DUID back, DNS and the
    search list (the root left out, as pasta does)."""
    srv = server()
    got_kind, xid, opts = parse_reply(srv.handle(frame(kind, opt(dhcpv6.OPT_CLIENTID, CLIENT_ID) + options)))
    assert (got_kind, xid) == (reply_kind, XID)
    assert opts == [(dhcpv6.OPT_SERVERID, SERVER_ID),
                    (dhcpv6.OPT_IA_NA, b"\0\0\0\x07" + b"\xff" * 8 + opt(dhcpv6.OPT_IAADDR, ADDRESS.packed + b"\xff" * 8)),
                    (dhcpv6.OPT_CLIENTID, CLIENT_ID),
                    (dhcpv6.OPT_DNS_SERVERS, ipaddress.IPv6Address("2001:db8::53").packed),
                    (dhcpv6.OPT_DOMAIN_LIST, b"\x07example\x03org\0")]
    assert srv.replies == 1 and not srv.drops


def test_information_request_without_dns():
    """An INFORMATION-REQUEST gets a REPLY; with no DNS or search list
    (pasta's default) options 23 and 24 are left out."""
    srv = dhcpv6.Dhcpv6Server(dhcpv6.Settings(mac=MAC, address=ADDRESS), started=STARTED)
    kind, _, opts = parse_reply(srv.handle(frame(dhcpv6.INFORMATION_REQUEST, opt(dhcpv6.OPT_CLIENTID, CLIENT_ID))))
    assert kind == dhcpv6.REPLY
    assert [code for code, _ in opts] == [dhcpv6.OPT_SERVERID, dhcpv6.OPT_IA_NA, dhcpv6.OPT_CLIENTID]


@pytest.mark.parametrize("kind", [dhcpv6.REQUEST, dhcpv6.RENEW, dhcpv6.CONFIRM])
def test_other_address_not_on_link(kind):
    """Another address in an IA: a REPLY with that IA, status NotOnLink
    (4) inside it, and no address."""
    server_id = opt(dhcpv6.OPT_SERVERID, SERVER_ID) if kind != dhcpv6.CONFIRM else b""
    got = server().handle(frame(kind, opt(dhcpv6.OPT_CLIENTID, CLIENT_ID) + server_id
                                + ia_na(b"\0\0\0\x07", "2001:db8::99")))
    reply_kind, _, opts = parse_reply(got)
    status = opt(dhcpv6.OPT_STATUS_CODE, b"\0\x04" + b"Prefix not appropriate for link.")
    assert reply_kind == dhcpv6.REPLY
    assert opts == [(dhcpv6.OPT_SERVERID, SERVER_ID), (dhcpv6.OPT_IA_NA, b"\0\0\0\x07" + b"\0" * 8 + status),
                    (dhcpv6.OPT_CLIENTID, CLIENT_ID)]


CID = opt(dhcpv6.OPT_CLIENTID, CLIENT_ID)
OTHER_SERVER = opt(dhcpv6.OPT_SERVERID, struct.pack("!HHI", 1, 1, 1) + b"\x02" * 6)


@pytest.mark.parametrize(("data", "reason"), [
    (frame(dhcpv6.SOLICIT, CID)[:60], "truncated"),
    (frame(dhcpv6.SOLICIT, CID, udp_len=200), "bad_length"),
    (frame(dhcpv6.SOLICIT, CID, udp_len=10), "bad_length"),
    (frame(dhcpv6.SOLICIT, CID, src=ipaddress.IPv6Address("::")), "bad_source"),
    (frame(dhcpv6.SOLICIT, CID + b"\0\x01\0\xff"), "option_overflow"),
    (frame(dhcpv6.SOLICIT, CID + b"\0"), "option_overflow"),
    (frame(dhcpv6.SOLICIT, ia_na()), "bad_client_id"),
    (frame(dhcpv6.SOLICIT, opt(dhcpv6.OPT_CLIENTID, b"\0" * 129)), "bad_client_id"),
    (frame(dhcpv6.SOLICIT, CID + opt(dhcpv6.OPT_SERVERID, b"\0" * 10)), "bad_server_id"),
    (frame(dhcpv6.SOLICIT, CID + opt(dhcpv6.OPT_SERVERID, SERVER_ID)), "server_id_unwanted"),
    (frame(dhcpv6.CONFIRM, CID + opt(dhcpv6.OPT_SERVERID, SERVER_ID)), "server_id_unwanted"),
    (frame(dhcpv6.SOLICIT, CID + opt(dhcpv6.OPT_IA_NA, b"\0\0")), "bad_ia"),
    (frame(dhcpv6.REQUEST, CID + ia_na()), "other_server"),
    (frame(dhcpv6.RENEW, CID + OTHER_SERVER), "other_server"),
    (frame(dhcpv6.REBIND, CID + OTHER_SERVER), "other_server"),
    (frame(dhcpv6.INFORMATION_REQUEST, CID + ia_na()), "ia_unwanted"),
    (frame(dhcpv6.INFORMATION_REQUEST, CID + opt(dhcpv6.OPT_IA_TA, b"\0" * 4)), "ia_unwanted"),
    (frame(dhcpv6.ADVERTISE, CID), "unknown_message_type"),
    (frame(99, CID), "unknown_message_type")])
def test_malformed_dropped(data, reason):
    """Each bad message is no reply and one drop under its own reason."""
    srv = server()
    assert srv.handle(data) is None
    assert srv.drops == {reason: 1} and srv.replies == 0


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=300))
def test_anything_is_a_reply_or_a_counted_drop(kind, tail):
    """Whatever message follows the headers, handle() raises nothing, and
    what it does not answer it counts; no drop is "unexpected"."""
    srv = server()
    reply = srv.handle(frame(kind, tail))
    assert (reply is not None) == (srv.replies == 1) and sum(srv.drops.values()) == (reply is None)
    assert "unexpected" not in srv.drops
