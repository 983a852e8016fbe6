"""Ready fd, exit fd, signals, and the guest going away."""

import os
import signal

import pytest

from lib.harness import wait_for


def test_ready_fd_written_after_configuration(guest, start_slirpd):
    # start_slirpd returns only once "1" was read and the fd closed (EOF)
    start_slirpd("-c", str(guest.pid))
    # configuration was complete at that moment
    addrs = guest.ip_json("-4", "addr", "show", "tap0")[0]["addr_info"]
    assert addrs[0]["local"] == "10.0.2.100"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_0(guest, start_slirpd, sig):
    d = start_slirpd("-c", str(guest.pid))
    assert d.stop(sig) == 0
    assert "Traceback" not in d.stderr


def test_exit_fd(guest, start_slirpd):
    r, w = os.pipe()
    d = start_slirpd("-c", f"--exit-fd={r}", str(guest.pid), pass_fds=[r])
    os.close(r)
    assert d.proc.poll() is None
    os.close(w)  # POLLHUP on the daemon's end
    assert d.proc.wait(timeout=10) == 0


def test_target_process_exit_ends_daemon(guest, start_slirpd):
    d = start_slirpd("-c", str(guest.pid))
    guest.stop()
    assert d.proc.wait(timeout=10) == 0


def test_tap_removed_ends_daemon(guest, start_slirpd):
    d = start_slirpd("-c", str(guest.pid))
    guest.run("ip link del tap0")
    assert d.proc.wait(timeout=10) == 0
    assert "TAP device is gone" in d.stderr


def test_no_fd_leak_while_serving(guest, start_slirpd):
    d = start_slirpd("-c", str(guest.pid))
    before = d.open_fds()
    guest.run("ping -c 20 -i 0.01 -W 2 10.0.2.2")
    wait_for(lambda: d.open_fds() == before, 5, "fd count back to baseline")


def test_sigusr1_dumps_counters(net_guest):
    d = net_guest.slirpd
    before = d.counters()
    net_guest.run("ping -c 3 -i 0.2 -W 2 10.0.2.2")
    after = d.counters()
    assert after["icmp_echo_replies"] - before["icmp_echo_replies"] == 3
    assert after["frames_in"] > before["frames_in"]
    assert d.proc.poll() is None
