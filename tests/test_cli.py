"""The command line: slirp4netns 1.2's options, help strings and errors."""

import re
import subprocess

import pytest

from lib.harness import SLIRPD, have
from slirpd import cli

# Every option string podman and rootlesskit may grep for in --help.
OPTION_STRINGS = [
    "-c, --configure", "-e, --exit-fd=FD", "-r, --ready-fd=FD", "-m, --mtu=MTU", "-6, --enable-ipv6",
    "-a, --api-socket=PATH", "--cidr=CIDR", "--disable-host-loopback", "--netns-type=TYPE",
    "--userns-path=PATH", "--enable-sandbox", "--enable-seccomp", "--outbound-addr=IPv4",
    "--outbound-addr6=IPv6", "--disable-dns", "--macaddress=MAC", "--target-type=TYPE",
    "-h, --help", "-v, --version",
]


def slirpd(*args, timeout=20):
    return subprocess.run([SLIRPD, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.daemon
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_option(flag):
    res = slirpd(flag)
    assert res.returncode == 0
    assert res.stdout.startswith("Usage: slirpd [OPTION]... PID|PATH [TAPNAME]\n")
    for s in OPTION_STRINGS:
        assert s in res.stdout, s


@pytest.mark.daemon
@pytest.mark.skipif(not have("slirp4netns"), reason="Debian's slirp4netns is not installed")
def test_help_has_every_long_option_of_slirp4netns():
    theirs = subprocess.run(["slirp4netns", "--help"], capture_output=True, text=True).stdout
    ours = slirpd("--help").stdout
    long_options = set(re.findall(r"--[a-z0-9-]+", theirs))
    assert len(long_options) >= 19
    assert long_options <= set(re.findall(r"--[a-z0-9-]+", ours))


# slirp4netns 1.2 checks --cidr before anything else: (CIDR, what its error says)
CIDR_CHECKS = [
    ("10.0.0.0/16", None), ("10.0.2.0/25", None), ("10.0.2.0/26", "prefix length needs to be 1-25"),
    ("10.0.2.0/30", "prefix length needs to be 1-25"), ("10.0.2.0/31", "prefix length needs to be 1-25"),
    ("10.0.2.0/32", "prefix length needs to be 1-25"), ("10.0.2.0/0", "prefix length needs to be 1-25"),
    ("10.0.2.5/24", "CIDR needs to be a network address"), ("10.0.2.0", "invalid CIDR"), ("foo", "invalid CIDR"),
]


@pytest.mark.daemon
@pytest.mark.skipif(not have("slirp4netns"), reason="Debian's slirp4netns is not installed")
@pytest.mark.parametrize("cidr,error", CIDR_CHECKS)
def test_cidr_checked_like_slirp4netns(cidr, error):
    """Side by side: both refuse the same CIDRs, for the same reason (a
    missing pid is what the accepted ones fail on next)."""
    argv = [f"--cidr={cidr}", "999999999", "tap0"]
    theirs = subprocess.run(["slirp4netns", *argv], capture_output=True, text=True, timeout=20)
    ours = slirpd(*argv)
    assert theirs.returncode == ours.returncode == 1
    if error is None:
        assert "no such process" in ours.stderr and "999999999" in theirs.stderr
    else:
        assert error in theirs.stderr + theirs.stdout
        assert error in ours.stderr and len(ours.stderr.splitlines()) == 1


@pytest.mark.daemon
@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version(flag):
    res = slirpd(flag)
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert re.fullmatch(r"slirpd version \d+\.\d+\.\d+\S*", lines[0])
    assert any(line.startswith("cffi: ") for line in lines[1:])
    assert any(line.startswith("pyroute2: ") for line in lines[1:])
    assert any(re.fullmatch(r"libseccomp: \d+\.\d+\.\d+", line) for line in lines[1:])


BAD_COMMAND_LINES = [
    (["--mtu=67", "1"], "MTU"),
    (["--mtu=65522", "1"], "MTU"),
    (["-m", "abc", "1"], "MTU"),
    (["-6", "--mtu=1279", "1"], "--enable-ipv6 needs an MTU of at least 1280"),
    (["--cidr=abc", "1"], "CIDR"),
    (["--cidr=10.0.2.0/26", "1"], "CIDR"),
    (["--cidr=10.0.2.0/0", "1"], "CIDR"),
    (["--cidr=10.0.2.0/30", "1"], "CIDR prefix length needs to be 1-25"),
    (["--cidr=10.0.2.0/31", "1"], "CIDR prefix length needs to be 1-25"),
    (["--cidr=10.0.2.0/32", "1"], "CIDR prefix length needs to be 1-25"),
    (["--cidr=10.0.2.5/24", "1"], "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.5/24"),
    (["--cidr=10.0.2.0", "1"], "CIDR"),
    (["--netns-type=foo", "1"], "--netns-type"),
    (["--target-type=foo", "1"], "--target-type"),
    (["--target-type=bess", "-c", "/tmp/b.sock"], "--configure conflicts with --target-type=bess"),
    (["--target-type=bess", "--netns-type=path", "/tmp/b.sock"], "--netns-type conflicts with --target-type=bess"),
    (["--target-type=bess", "--userns-path=/x", "/tmp/b.sock"], "--userns-path conflicts with --target-type=bess"),
    (["--macaddress=02:00:00:00:00:01", "1"], "--macaddress"),
    (["-c", "--macaddress=zz", "1"], "--macaddress"),
    (["-c", "--macaddress=01:00:00:00:00:01", "1"], "--macaddress"),
    (["-e", "abc", "1"], "exit-fd"),
    (["-r", "-1", "1"], "ready-fd"),
    ([], "PID"),
    (["1", "tap0", "extra"], "PID"),
    (["abc"], "PID"),
    (["0"], "PID"),
    (["1", "this-name-is-too-long"], "TAPNAME"),
    (["--no-such-option", "1"], "unrecognized"),
    # Not built yet: refused loudly, never silently ignored.
    (["--publish=abc", "1"], "--publish"),
    (["--publish=8080:0", "1"], "--publish"),
    (["--publish=nohost:8080:80", "1"], "--publish"),
    (["--outbound-addr=nosuchif0", "1"], "--outbound-addr: 'nosuchif0' is neither"),
    (["--outbound-addr6=nosuchif0", "1"], "--outbound-addr6: 'nosuchif0' is neither"),
    (["--outbound-addr6=10.0.0.1", "1"], "--outbound-addr6: '10.0.0.1' is neither"),
]


@pytest.mark.daemon
@pytest.mark.parametrize("args,message", BAD_COMMAND_LINES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_command_line_is_one_line_and_exit_1(args, message):
    res = slirpd(*args)
    assert res.returncode == 1
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("slirpd: ")
    assert message in lines[0]


@pytest.mark.daemon
def test_no_such_pid():
    res = slirpd("999999999")
    assert res.returncode == 1
    assert res.stderr.strip() == "slirpd: no such process: 999999999"


@pytest.mark.daemon
def test_exit_fd_not_open():
    res = slirpd("--exit-fd=987", "1")
    assert res.returncode == 1
    assert "exit-fd 987 is not an open file descriptor" in res.stderr


# The command lines clients pass, read without argparse (cli._parse_common,
# issue 19): podman's and rootlesskit's (tests/test_podman.py), the suite's
COMMON_COMMAND_LINES = [
    ["--disable-host-loopback", "--mtu=65520", "--enable-sandbox", "--enable-seccomp", "--enable-ipv6", "-c",
     "-r", "3", "-e", "4", "--netns-type=path", "/run/user/1000/netns/cni-1", "tap0"],
    ["--api-socket", "/run/user/1000/api.sock", "--cidr", "10.0.5.0/24", "--disable-host-loopback", "--mtu=65520",
     "-c", "-r", "3", "-e", "4", "--netns-type=path", "/run/user/1000/netns/cni-1", "tap0"],
    ["--configure", "--mtu=65520", "--ready-fd", "3", "4242"],
    ["-c", "-6", "--macaddress=02:11:22:33:44:55", "-p", "8080:80", "--publish=[::1]:8443:443/udp", "4242", "eth7"],
    ["4242", "tap0", "-c", "--debug"],
    ["--target-type=bess", "/tmp/bess.sock"],
    ["--create-netns", "/tmp/ns", "--pcap=/tmp/x.pcap", "--pcap-max-size=1M"],
    ["--userns-path=/proc/1/ns/user", "--outbound-addr", "10.0.0.1", "--outbound-addr6=::1", "--disable-dns",
     "--netns-type", "pid", "-a", "", "1"],
    [], ["-h"], ["--version"], ["1"],
]


def _every_option_alone():
    """Each option string in each form _parse_common() reads, with the
    positionals before and after it."""
    for strings, kind in cli.OPTIONS:
        for string in strings:
            forms = [[string]] if kind == cli.FLAG else [[string, "x"]] + ([[f"{string}=x"]] if string[1] == "-" else [])
            for form in forms:
                yield [*form, "1", "tap0"]
                yield ["1", "tap0", *form]
                yield [*form, *form, "1"]


@pytest.mark.parametrize("argv", COMMON_COMMAND_LINES + list(_every_option_alone()), ids=" ".join)
def test_common_command_line_parsed_as_argparse_parses_it(argv):
    fast = cli._parse_common(argv)
    assert fast is not None
    assert vars(fast) == vars(cli._build_parser().parse_args(argv))


# Left to argparse, which accepts or refuses them in its own way
UNCOMMON_COMMAND_LINES = [
    ["-c6", "1"], ["--conf", "1"], ["--mt=1500", "1"], ["-m1500", "1"], ["-r=3", "1"], ["--mtu=", "1"],
    ["-r", "-1", "1"], ["--mtu", "-5", "1"], ["1", "-c", "tap0"], ["--disable-dns=x", "1"], ["-", "1"],
    ["--no-such-option", "1"], ["-x", "1"], ["--mtu"], ["-p"],
]


@pytest.mark.parametrize("argv", UNCOMMON_COMMAND_LINES, ids=" ".join)
def test_uncommon_command_line_left_to_argparse(argv):
    assert cli._parse_common(argv) is None
