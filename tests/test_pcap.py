"""--pcap: every frame the TAP carries, both ways, in a file tcpdump reads.

Frame-level tests drive slirpd._dp over the frame harness of
lib.link (a socket pair or a real TAP) and read the capture with
a pcap parser written here; daemon tests run slirpd with --pcap against a
guest and read the file with `tcpdump -r`.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import struct
import subprocess

import pytest

from lib.frames import GW4, arp_request, echo_request
from lib.harness import SLIRPD, as_user, have, wait_for
from lib.link import Link
from lib.tcputil import GUEST_SEND, Server, sink

PCAP_GLOBAL = struct.Struct("=IHHiIII")
PCAP_RECORD = struct.Struct("=IIII")

needs_tcpdump = pytest.mark.skipif(not have("tcpdump"), reason="tcpdump is not installed (make deps)")


def read_pcap(path) -> list[bytes]:
    """The frames of a classic pcap file; checks the header and that the file
    ends on a record boundary."""
    data = open(path, "rb").read()
    magic, major, minor, _zone, _sigfigs, snaplen, linktype = PCAP_GLOBAL.unpack_from(data)
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)
    frames, pos = [], PCAP_GLOBAL.size
    while pos < len(data):
        assert pos + PCAP_RECORD.size <= len(data), "truncated record header"
        _sec, usec, incl, orig = PCAP_RECORD.unpack_from(data, pos)
        assert usec < 1_000_000 and incl == orig and incl <= snaplen
        pos += PCAP_RECORD.size
        assert pos + incl <= len(data), "truncated record"
        frames.append(data[pos:pos + incl])
        pos += incl
    return frames


def tcpdump(path) -> list[str]:
    """`tcpdump -r path` lines; fails the test on any complaint about the file."""
    res = subprocess.run(["tcpdump", "-n", "-r", str(path)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert "truncated" not in res.stderr and "error" not in res.stderr.lower(), res.stderr
    return res.stdout.splitlines()


def start_capture(lk: Link, path, max_size: int = 1 << 20):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    lk.dp.pcap_start(fd, max_size)
    return fd


# --- the data plane ------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("vnet_hdr", [False, True], ids=["plain", "vnet_hdr"])
def test_both_directions_exact_bytes(tmp_path, vnet_hdr):
    """Each frame read and each frame written is one record, byte for byte,
    in order, without a virtio-net header."""
    lk = Link("tap", vnet_hdr=vnet_hdr)
    try:
        assert lk.dp.pcap_state() == 0  # PCAP_OFF
        start_capture(lk, tmp_path / "c.pcap")
        assert lk.dp.pcap_state() == 1  # PCAP_ON
        sent, replies = [arp_request(GW4), echo_request(b"x" * 300)], []
        for frame in sent:
            replies.append(lk.exchange(frame))
        frames = read_pcap(tmp_path / "c.pcap")
        assert frames == [sent[0], replies[0], sent[1], replies[1]]
        c = lk.dp.counters()
        assert c["pcap_frames"] == 4 == c["frames_in"] + c["frames_out"]
        assert c["pcap_write_errors"] == 0
    finally:
        lk.close()


@pytest.mark.timeout(60)
def test_size_limit_stops_capture_on_a_record_boundary(tmp_path):
    lk = Link("pair")
    try:
        limit = 1024
        start_capture(lk, tmp_path / "c.pcap", max_size=limit)
        ping = echo_request(b"p" * 100)  # 142-byte frames: 158 bytes a record
        for _ in range(8):
            assert lk.exchange(ping) is not None
        assert lk.dp.pcap_state() == 2  # PCAP_FULL
        assert lk.dp.notices() & 4  # DP_NOTICE_PCAP_STOPPED, once
        assert lk.exchange(ping) is not None
        assert not lk.dp.notices() & 4
        size = os.path.getsize(tmp_path / "c.pcap")
        assert limit - 158 < size <= limit
        frames = read_pcap(tmp_path / "c.pcap")
        assert len(frames) == lk.dp.counters()["pcap_frames"] == (limit - 24) // 158
        assert lk.dp.counters()["pcap_write_errors"] == 0
    finally:
        lk.close()


@pytest.mark.timeout(60)
def test_write_error_stops_capture_not_the_data_plane():
    """A reader that goes away (EPIPE) ends the capture: one counted error,
    a notice, the descriptor closed; frames keep flowing."""
    lk = Link("pair")
    r, w = os.pipe()
    try:
        lk.dp.pcap_start(w, 1 << 20)
        assert len(os.read(r, 100)) == 24  # the file header
        os.close(r)
        r = -1
        fds_before = len(os.listdir("/proc/self/fd"))
        for _ in range(3):
            assert lk.exchange(echo_request(b"e")) is not None
        assert lk.dp.pcap_state() == -errno.EPIPE
        assert lk.dp.notices() & 4
        c = lk.dp.counters()
        assert c["pcap_write_errors"] == 1 and c["pcap_frames"] == 0
        assert c["icmp_echo_replies"] == 3
        assert len(os.listdir("/proc/self/fd")) == fds_before - 1  # the pipe's write end
    finally:
        if r >= 0:
            os.close(r)
        lk.close()


def test_start_errors(tmp_path):
    lk = Link("pair")
    try:
        fd = os.open("/dev/full", os.O_WRONLY)
        with pytest.raises(OSError) as e:
            lk.dp.pcap_start(fd, 1 << 20)
        assert e.value.errno == errno.ENOSPC
        os.fstat(fd)  # still the caller's
        with pytest.raises(OSError) as e:
            lk.dp.pcap_start(fd, 10)  # smaller than the file header
        assert e.value.errno == errno.EINVAL
        os.close(fd)
        start_capture(lk, tmp_path / "c.pcap")
        fd = os.open(tmp_path / "d.pcap", os.O_WRONLY | os.O_CREAT, 0o600)
        with pytest.raises(OSError) as e:
            lk.dp.pcap_start(fd, 1 << 20)
        assert e.value.errno == errno.EBUSY
        os.close(fd)
    finally:
        lk.close()


def test_uncaptured_data_plane_has_no_pcap_counts():
    lk = Link("pair")
    try:
        assert lk.exchange(arp_request(GW4)) is not None
        c = lk.dp.counters()
        assert c["pcap_frames"] == 0 and lk.dp.pcap_state() == 0
    finally:
        lk.close()


# --- the daemon ------------------------------------------------------------------

def ctl_stats(user, api: str) -> dict:
    res = subprocess.run([SLIRPD + "-ctl", "-s", api, "--json", "stats"], capture_output=True, text=True,
                         timeout=30, **as_user(user))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)["return"]


@needs_tcpdump
@pytest.mark.timeout(120)
def test_tcp_transfer_capture_holds_handshake(guest, start_slirpd, user_tmp):
    path = user_tmp / "transfer.pcap"
    d = start_slirpd("--configure", f"--pcap={path}", str(guest.pid))
    guest.slirpd = d
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with Server(sink) as srv:
        out = guest.python(GUEST_SEND, str(srv.port), str(200_000)).stdout.split()
        srv.wait(1)
        assert srv.results[0] == (200_000, out[1])
    wait_for(lambda: (c := d.counters())["flows_created"] == c["flows_closed"], 10, "the flow to close")
    c = d.counters()
    assert d.stop() == 0
    frames = read_pcap(path)
    # the guest's kernel may send a frame of its own (IPv6 MLD) after the snapshot
    assert c["pcap_frames"] == c["frames_in"] + c["frames_out"] <= len(frames)
    lines = tcpdump(path)
    port = srv.port
    syn = [ln for ln in lines if "10.0.2.100." in ln and f"> 10.0.2.2.{port}: Flags [S]," in ln]
    synack = [ln for ln in lines if f"10.0.2.2.{port} > 10.0.2.100." in ln and "Flags [S.]," in ln]
    fin = [ln for ln in lines if f"> 10.0.2.2.{port}: Flags [F" in ln]
    assert syn and synack and fin, "\n".join(lines[:20])
    payload = sum(int(ln.rsplit("length ", 1)[1]) for ln in lines
                  if f"> 10.0.2.2.{port}:" in ln and "length " in ln)
    assert payload >= 200_000


@needs_tcpdump
@pytest.mark.timeout(120)
def test_max_size_stops_with_one_log_line(start_slirpd, guest, user_tmp, plain_user):
    path, api = user_tmp / "small.pcap", str(user_tmp / "api.sock")
    d = start_slirpd("--configure", f"--pcap={path}", "--pcap-max-size=4K", f"--api-socket={api}", str(guest.pid))
    assert ctl_stats(plain_user, api)["pcap"] == "capturing"
    guest.run(["ping", "-c", "40", "-i", "0.01", "-s", "200", "-W", "2", "10.0.2.2"], timeout=30)
    wait_for(lambda: "packet capture stopped" in d.stderr, 10, "the stop line")
    assert ctl_stats(plain_user, api)["pcap"] == "stopped: size limit"
    shown = subprocess.run([SLIRPD + "-ctl", "-s", api, "stats"], capture_output=True, text=True, timeout=30,
                           **as_user(plain_user)).stdout
    assert "pcap stopped: size limit" in shown.splitlines()
    res = guest.run(["ping", "-c", "1", "-W", "5", "10.0.2.2"], check=False)
    assert res.returncode == 0, "the daemon stopped answering"
    assert d.stderr.count("packet capture stopped") == 1
    assert "--pcap-max-size" in d.stderr
    assert os.path.getsize(path) <= 4096
    assert len(tcpdump(path)) == len(read_pcap(path)) == d.counters()["pcap_frames"] > 0


@pytest.mark.timeout(60)
def test_write_error_one_line_daemon_lives(guest, start_slirpd, user_tmp, plain_user):
    """The capture file is a FIFO whose reader leaves: the daemon logs one
    line, counts the error and goes on serving."""
    fifo = user_tmp / "fifo"
    os.mkfifo(fifo)
    os.chown(fifo, plain_user.pw_uid, plain_user.pw_gid)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        d = start_slirpd("--configure", f"--pcap={fifo}", str(guest.pid))
    finally:
        os.close(reader)
    guest.run(["ping", "-c", "2", "-i", "0.2", "-W", "5", "10.0.2.2"], timeout=30)
    wait_for(lambda: "packet capture stopped" in d.stderr, 10, "the stop line")
    assert "Broken pipe" in d.stderr and d.stderr.count("packet capture stopped") == 1
    guest.run(["ping", "-c", "1", "-W", "5", "10.0.2.2"], timeout=30)
    assert d.proc.poll() is None
    assert d.counters()["pcap_write_errors"] == 1


@pytest.mark.daemon
@pytest.mark.parametrize("args, message", [
    (["--pcap-max-size=1M", "1"], "--pcap-max-size needs --pcap"),
    (["--pcap=/tmp/x", "--pcap-max-size=lots", "1"], "--pcap-max-size: expected bytes"),
    (["--pcap=/tmp/x", "--pcap-max-size=100", "1"], "at least 1024 bytes"),
])
def test_cli_errors(plain_user, args, message):
    res = subprocess.run([SLIRPD, *args], capture_output=True, text=True, timeout=30, **as_user(plain_user))
    assert res.returncode == 1 and message in res.stderr, res.stderr


@pytest.mark.daemon
@pytest.mark.timeout(60)
def test_unwritable_file_fails_clearly(guest, plain_user):
    res = subprocess.run([SLIRPD, "--configure", "--pcap=/proc/nope/x.pcap", str(guest.pid)],
                         capture_output=True, text=True, timeout=30, **as_user(plain_user))
    assert res.returncode == 1
    assert "--pcap /proc/nope/x.pcap: No such file or directory" in res.stderr


@pytest.mark.daemon
@pytest.mark.timeout(60)
def test_symlink_refused(guest, plain_user, user_tmp):
    """A symlink where the capture goes is refused, not followed: it could
    make slirpd truncate whatever it points to."""
    victim = user_tmp / "victim"
    victim.write_text("keep me\n")
    os.chown(victim, plain_user.pw_uid, plain_user.pw_gid)
    (user_tmp / "cap.pcap").symlink_to(victim)
    res = subprocess.run([SLIRPD, "--configure", f"--pcap={user_tmp / 'cap.pcap'}", str(guest.pid)],
                         capture_output=True, text=True, timeout=30, **as_user(plain_user))
    assert res.returncode == 1 and "a symbolic link" in res.stderr, res.stderr
    assert victim.read_text() == "keep me\n"


@pytest.mark.timeout(60)
def test_existing_file_made_private(start_slirpd, guest, plain_user, user_tmp):
    """The guest's traffic never lands in a file others can read: an existing
    file loses its old mode (0644 here) for 0600."""
    path = user_tmp / "old.pcap"
    path.write_bytes(b"old contents")
    path.chmod(0o644)
    os.chown(path, plain_user.pw_uid, plain_user.pw_gid)
    start_slirpd("--configure", f"--pcap={path}", str(guest.pid))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not open(path, "rb").read().startswith(b"old")


def test_theory_comment_names_exist():
    """Every constant the theory comment of pcap.c names is defined in csrc/."""
    from pathlib import Path

    csrc = Path(__file__).resolve().parent.parent / "csrc"
    src = (csrc / "pcap.c").read_text()
    theory = src[:src.index("*/")]
    names = set(re.findall(r"\b((?:DP|PCAP)_[A-Z0-9_]+)\b", theory))
    assert names >= {"PCAP_HDR_LEN", "DP_PCAP_FULL", "DP_PCAP_BATCH", "DP_NOTICE_PCAP_STOPPED"}
    defined = "".join(p.read_text() for p in csrc.glob("*.[ch]"))
    for name in names:
        assert re.search(rf"#define\s+{name}\b", defined), name
