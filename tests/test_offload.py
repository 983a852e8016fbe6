"""Checksum and TCP segmentation offload on the TAP (csrc/tap.c), end to end.

slirpd opens the TAP with IFF_VNET_HDR and enables TUN_F_CSUM: the guest's
kernel then leaves TCP and UDP checksums to slirpd (only the pseudo-header sum
in the field), and slirpd writes TCP segments of up to 64 KiB to the guest with
a GSO header whatever the MTU; with TUN_F_TSO4/6 the guest sends slirpd
segments of up to 64 KiB too.  These tests move data through a real guest at
MTU 1500 and check, with the data plane's counters, that checksum offload was
used from the guest, that large segments flowed both ways, that nothing was
dropped for a bad virtio-net header, and that the bytes arrived intact.
Hostile headers, frame by frame, are in test_dataplane_frames.py.
"""

from __future__ import annotations

import pytest

from lib.harness import wait_for
from lib.tcputil import GUEST_RECV, GUEST_SEND, Server, sink, source

MIB = 1 << 20


@pytest.mark.timeout(180)
def test_offload_256mib_each_way_mtu1500(net_guest):
    d = net_guest.slirpd
    assert net_guest.ip_json("link", "show", "tap0")[0]["mtu"] == 1500

    with Server(sink) as srv:
        out = net_guest.python(GUEST_SEND, str(srv.port), str(256 * MIB), timeout=120).stdout.split()
        srv.wait(1)
        assert not srv.errors
        assert srv.results[0] == (256 * MIB, out[1])
    after_up = d.counters()

    with Server(source(256 * MIB)) as srv:
        out = net_guest.python(GUEST_RECV, str(srv.port), timeout=120).stdout.split()
        srv.wait(1)
        assert not srv.errors
        assert int(out[0]) == 256 * MIB
        assert srv.results[0] == (int(out[0]), out[1])
    c = d.counters()

    # guest -> host: the guest's kernel left its checksums and its
    # segmentation to us
    assert after_up["vnet_csum_partial_in"] > 0, after_up
    assert after_up["vnet_gso_in"] > 0, after_up
    assert after_up["bytes_in"] / after_up["frames_in"] > 1514, "frames from the guest no larger than the MTU"
    # host -> guest: we sent GSO segments, and carried the bulk of the bytes
    gso_out = c["vnet_gso_out"] - after_up["vnet_gso_out"]
    assert gso_out > 0, c
    frames_out = c["frames_out"] - after_up["frames_out"]
    bytes_out = c["bytes_out"] - after_up["bytes_out"]
    assert bytes_out / frames_out > 1514, "frames to the guest no larger than the MTU"
    assert c["drop_vnet_hdr"] == 0 and c["drop_vnet_gso"] == 0, c
    assert c["drop_tcp_checksum"] == 0 and c["drop_tap_write"] == 0, c
    wait_for(lambda: d.counters()["flows_created"] == d.counters()["flows_closed"], 5,
             "the flows to close")


@pytest.mark.timeout(60)
def test_udp_with_checksum_offload(net_guest):
    """UDP from a guest whose TAP claims checksum offload arrives with only
    the pseudo-header sum in its checksum field: accepted, not dropped."""
    import socket

    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(10)
    port = srv.getsockname()[1]
    script = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(20):
    s.sendto(b"offload %d" % i + b"x" * 1000, ("10.0.2.2", int(sys.argv[1])))
"""
    with srv:
        net_guest.python(script, str(port))
        got = set()
        while len(got) < 20:
            data, _ = srv.recvfrom(2048)
            got.add(data.split(b"x")[0])
    assert got == {b"offload %d" % i for i in range(20)}
    c = net_guest.slirpd.counters()
    assert c["drop_udp_checksum"] == 0 and c["vnet_csum_partial_in"] >= 20, c
