"""DHCPv6 server in pasta's model (its dhcpv6.c): the guest's one IPv6
address, for ever, to whoever asks.

The data plane hands over every UDP packet to port 547 at a multicast
address (ff02::1:2, All_DHCP_Relay_Agents_and_Servers) when
GuestNetwork.dhcpv6 is set, a batch per wake-up, and sends the replies built
here: from our link-local address (LINK_LOCAL, fe80::2, where router
advertisements come from) to the client's, port 546.  slirp4netns's model
has none (libslirp answers no DHCPv6).

As pasta answers: SOLICIT gets an ADVERTISE; REQUEST, RENEW, REBIND,
CONFIRM and INFORMATION-REQUEST get a REPLY.  Every answer carries our DUID
(DUID-LLT: our MAC address, the time the server started), an IA_NA with the
guest's address (IAID the client's, T1, T2 and both lifetimes infinite), the
client's identifier echoed, and, if any, the DNS servers (option 23) and
the search list (option 24).  A REQUEST, RENEW or CONFIRM naming another
address in an IA gets a REPLY with status NotOnLink in that IA instead.
There is no rapid commit: pasta's dhcpv6.c has none (a SOLICIT always gets
an ADVERTISE).

Dropped, each counted under its reason in `drops`: a packet too short for
its headers or whose UDP length is not its payload's; an option running
past the message; no client identifier, or one longer than a DUID may be; a
server identifier that is not 14 bytes (a DUID-LLT) or not ours where one
is needed (REQUEST, RENEW) or allowed; one where none may be (SOLICIT,
CONFIRM); an INFORMATION-REQUEST with an IA; any other message type.  The
server keeps no state per client, so nothing grows with what the guest
sends; handle() raises nothing ("unexpected" counts what nobody foresaw).
"""

from __future__ import annotations

import collections
import ipaddress
import struct
import time

from slirpd.dhcp import FrameServer, Malformed, encode_search, inet_checksum
from slirpd.log import log

SOLICIT, ADVERTISE, REQUEST, CONFIRM, RENEW, REBIND, REPLY = 1, 2, 3, 4, 5, 6, 7
INFORMATION_REQUEST = 11
OPT_CLIENTID, OPT_SERVERID, OPT_IA_NA, OPT_IA_TA, OPT_IAADDR = 1, 2, 3, 4, 5
OPT_STATUS_CODE, OPT_DNS_SERVERS, OPT_DOMAIN_LIST = 13, 23, 24
STATUS_NOT_ON_LINK = 4
NOT_ON_LINK_MESSAGE = b"Prefix not appropriate for link."  # pasta's words
DUID_LLT, HWTYPE_ETHERNET = 1, 1
DUID_MAX = 128  # RFC 8415, 11.1
SERVER_ID_LEN = 14  # DUID-LLT of a MAC address: type, hardware type, time, address
IA_NA_LEN = 12  # IAID, T1, T2 (before the IA's options)
IA_TA_LEN = 4  # IAID
IAADDR_LEN = 24  # address, preferred and valid lifetimes
INFINITY = 0xFFFFFFFF
PASTA_IAID = b"\x01\0\0\0"  # pasta's IAID when the client sent no IA_NA
EPOCH_2000 = 946684800  # the DUID's time counts from 2000-01-01
ETH_HLEN, IP6_HLEN, UDP_HLEN, MSG_HLEN = 14, 40, 8, 4
ETH_TYPE_IP6 = b"\x86\xdd"
IPPROTO_UDP = 17
HOP_LIMIT = 255
SERVER_PORT, CLIENT_PORT = 547, 546
LINK_LOCAL = ipaddress.IPv6Address("fe80::2")  # the data plane's (DP_LL6_ADDR)



class Settings(collections.namedtuple("Settings", ("mac", "address", "dns", "search"), defaults=((), ()))):
    """What the server hands out.

    mac: our MAC address (the frames' source, and in our DUID); address: the
    guest's one IPv6 address; dns: the DNS servers (option 23, left out if
    empty); search: domain names (option 24, left out if empty)."""

    __slots__ = ()


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("!HH", code, len(value)) + value


def parse_options(data: bytes) -> list[tuple[int, bytes]]:
    """DHCPv6 options in order, as (code, value); raises Malformed when
    one runs past the data."""
    opts = []
    i = 0
    while i < len(data):
        if i + 4 > len(data):
            raise Malformed("option_overflow")
        code, length = struct.unpack_from("!HH", data, i)
        if i + 4 + length > len(data):
            raise Malformed("option_overflow")
        opts.append((code, data[i + 4:i + 4 + length]))
        i += 4 + length
    return opts


def _first(opts, code: int) -> bytes | None:
    return next((value for c, value in opts if c == code), None)


class Dhcpv6Server(FrameServer):
    """Replies for the guest's link; stateless but for the counters."""

    PROTOCOL = "DHCPv6"

    def __init__(self, settings: Settings, started: float | None = None):
        super().__init__()
        self.settings = settings
        duid_time = int(time.time() if started is None else started) - EPOCH_2000
        self.server_id = struct.pack("!HHI", DUID_LLT, HWTYPE_ETHERNET, duid_time & INFINITY) + settings.mac

    def stats(self) -> dict:
        """Replies sent and drops by reason."""
        return {"replies": self.replies, "drops": dict(self.drops)}

    def _handle(self, frame: bytes) -> bytes | None:
        """One frame to UDP port 547 in, the reply frame (or None) out;
        raises Malformed."""
        udp = ETH_HLEN + IP6_HLEN
        if len(frame) < udp + UDP_HLEN or frame[12:14] != ETH_TYPE_IP6 or frame[ETH_HLEN + 6] != IPPROTO_UDP:
            raise Malformed("truncated")
        payload_len = struct.unpack_from("!H", frame, ETH_HLEN + 4)[0]
        udp_len = struct.unpack_from("!H", frame, udp + 4)[0]
        if udp + payload_len > len(frame) or udp_len != payload_len or udp_len < UDP_HLEN + MSG_HLEN:
            raise Malformed("bad_length")
        client = ipaddress.IPv6Address(frame[ETH_HLEN + 8:ETH_HLEN + 24])
        if client.is_unspecified:
            raise Malformed("bad_source")
        msg = frame[udp + UDP_HLEN:udp + udp_len]
        kind, xid = msg[0], msg[1:4]
        opts = parse_options(msg[MSG_HLEN:])
        client_id = _first(opts, OPT_CLIENTID)
        if client_id is None or len(client_id) > DUID_MAX:
            raise Malformed("bad_client_id")
        server_id = _first(opts, OPT_SERVERID)
        if server_id is not None and len(server_id) != SERVER_ID_LEN:
            raise Malformed("bad_server_id")
        ia_na = _first(opts, OPT_IA_NA)
        if ia_na is not None and len(ia_na) < IA_TA_LEN:  # pasta: the shorter of IA_NA's and IA_TA's
            raise Malformed("bad_ia")
        ours = server_id == self.server_id
        reply_kind = REPLY
        if kind in (REQUEST, RENEW) and not ours:
            raise Malformed("other_server")
        if kind in (REQUEST, RENEW, CONFIRM):
            if kind == CONFIRM and server_id is not None:
                raise Malformed("server_id_unwanted")
            bad_ia = self._not_on_link(opts)
            if bad_ia is not None:
                return self._frame(frame, client, self._not_on_link_reply(xid, bad_ia, client_id))
        elif kind in (INFORMATION_REQUEST, REBIND):  # pasta refuses a REBIND without our server id (RFC 8415 has none)
            if server_id is not None and not ours:
                raise Malformed("other_server")
            if kind == INFORMATION_REQUEST and (ia_na is not None or _first(opts, OPT_IA_TA) is not None):
                raise Malformed("ia_unwanted")
        elif kind == SOLICIT:
            if server_id is not None:
                raise Malformed("server_id_unwanted")
            reply_kind = ADVERTISE
        else:
            raise Malformed("unknown_message_type")
        iaid = ia_na[:4] if ia_na is not None else PASTA_IAID
        return self._frame(frame, client, self._reply(reply_kind, xid, iaid, client_id))

    def _not_on_link(self, opts) -> tuple[int, bytes] | None:
        """The first IA (code, value) naming an address that is not the
        guest's, None if there is none (pasta's dhcpv6_ia_notonlink(): an
        IA or an address option of a wrong length ends the search)."""
        for code in (OPT_IA_NA, OPT_IA_TA):
            for ia_code, ia in opts:
                if ia_code != code:
                    continue
                if len(ia) < IA_NA_LEN:
                    return None
                for sub_code, sub in parse_options(ia[IA_NA_LEN:]):  # pasta skips 12 bytes of an IA_TA too
                    if sub_code != OPT_IAADDR:
                        continue
                    if len(sub) != IAADDR_LEN:
                        return None
                    if sub[:16] != self.settings.address.packed:
                        log.debug("DHCPv6: requested address %s not on link", ipaddress.IPv6Address(sub[:16]))
                        return code, ia
        return None

    def _not_on_link_reply(self, xid: bytes, bad_ia: tuple[int, bytes], client_id: bytes) -> bytes:
        """REPLY with the offending IA, status NotOnLink inside it."""
        code, ia = bad_ia
        status = _option(OPT_STATUS_CODE, struct.pack("!H", STATUS_NOT_ON_LINK) + NOT_ON_LINK_MESSAGE)
        return (bytes([REPLY]) + xid + _option(OPT_SERVERID, self.server_id) + _option(code, ia[:IA_NA_LEN] + status)
                + _option(OPT_CLIENTID, client_id))

    def _reply(self, kind: int, xid: bytes, iaid: bytes, client_id: bytes) -> bytes:
        """ADVERTISE or REPLY: our DUID, the guest's address, the client's
        DUID, DNS servers and search list."""
        st = self.settings
        iaaddr = _option(OPT_IAADDR, st.address.packed + struct.pack("!II", INFINITY, INFINITY))
        msg = (bytes([kind]) + xid + _option(OPT_SERVERID, self.server_id)
               + _option(OPT_IA_NA, iaid + struct.pack("!II", INFINITY, INFINITY) + iaaddr)
               + _option(OPT_CLIENTID, client_id))
        if st.dns:
            msg += _option(OPT_DNS_SERVERS, b"".join(a.packed for a in st.dns))
        names = [n for n in st.search if n.rstrip(".")]  # pasta skips the root
        if names:
            msg += _option(OPT_DOMAIN_LIST, encode_search(names))
        return msg

    def _frame(self, request: bytes, client: ipaddress.IPv6Address, msg: bytes) -> bytes:
        """The Ethernet frame carrying msg back to the client that sent request."""
        udp = struct.pack("!HHHH", SERVER_PORT, CLIENT_PORT, UDP_HLEN + len(msg), 0) + msg
        pseudo = LINK_LOCAL.packed + client.packed + struct.pack("!IxxxB", len(udp), IPPROTO_UDP)
        udp = udp[:6] + struct.pack("!H", inet_checksum(pseudo + udp) or 0xFFFF) + udp[8:]
        ip = struct.pack("!IHBB", 6 << 28, len(udp), IPPROTO_UDP, HOP_LIMIT) + LINK_LOCAL.packed + client.packed
        self.replies += 1
        return request[6:12] + self.settings.mac + ETH_TYPE_IP6 + ip + udp
