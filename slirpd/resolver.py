"""The host's nameserver: where the DNS address (network+3, fd00::3) forwards.

It is the first nameserver of the host's /etc/resolv.conf, as libslirp (and
so slirp4netns) takes it: the first IPv4 one, else the first IPv6 one.  An
IPv4-mapped address (::ffff:127.0.0.53) is the IPv4 address it maps.  A
nameserver on the host's loopback (systemd-resolved's 127.0.0.53, dnsmasq's
127.0.0.1) is used like any other, --disable-host-loopback or not (see
csrc/fwd.c).

The host changes its resolver when it changes networks: systemd-resolved and
NetworkManager replace the file that /etc/resolv.conf links to (by rename,
so the old file stays whole for whoever has it open).  The data plane raises
DP_NOTICE_DNS_USED when a flow to the DNS address opens, at most once a
second; the daemon then calls HostResolver.refresh(), which reads the file
again if it is not the one read last time (device, inode, size, mtime), and
hands a new nameserver to the data plane.  So new queries go to the new
nameserver within a second or two of the change, and a guest that does not
use DNS costs nothing.  libslirp does the same: a stat() of resolv.conf at
most once a second, on a DNS query.

Under --enable-seccomp no path may be opened.  The file is opened relative to
a descriptor of its directory (openat(dir_fd, "resolv.conf", O_RDONLY |
O_CLOEXEC)), the one call of that shape the filter allows; with
--enable-sandbox the descriptor is opened again after the pivot
(reopen_dir()), so that it names the sandbox's read-only /etc and reaches
nothing outside the new root.  A symlink to /run resolves inside the
sandbox's /run, which shows the host's.
"""

from __future__ import annotations

import ipaddress
import os
import stat

from slirpd.log import log

RESOLV_CONF = "/etc/resolv.conf"
READ_MAX = 65536  # bytes of resolv.conf read at most
# What seccomp.py allows openat() to pass; O_NONBLOCK: a FIFO there must not
# hang the daemon (only a regular file is read)
OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK


def nameservers(text: str) -> tuple[ipaddress.IPv4Address | None, ipaddress.IPv6Address | None]:
    """The first IPv4 and the first IPv6 `nameserver` of a resolv.conf's
    text (an IPv4-mapped one counts as IPv4; a zone index is ignored);
    None where it has none."""
    v4 = v6 = None
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != "nameserver":
            continue
        try:
            addr = ipaddress.ip_address(words[1].split("%")[0])
        except ValueError:
            continue
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if addr.version == 4 and v4 is None:
            v4 = addr
        elif addr.version == 6 and v6 is None:
            v6 = addr
    return v4, v6


class HostResolver:
    """The host's nameserver, read from path and read again when it changes.

    upstream is (first IPv4 nameserver, first IPv6 nameserver), either None."""

    def __init__(self, path: str = RESOLV_CONF):
        self.path = path
        self.dir, self.name = os.path.split(path)
        self.dir_fd: int | None = None
        self.identity: tuple | None = None  # of the file read last, None if none could be
        self.problem: str | None = None  # why there is no nameserver, as last logged
        self.upstream: tuple[ipaddress.IPv4Address | None, ipaddress.IPv6Address | None] = (None, None)
        self.reopen_dir()
        self.refresh()

    def reopen_dir(self) -> None:
        """(Re)open the directory descriptor files are opened from: at start,
        and inside the sandbox once it is entered."""
        if self.dir_fd is not None:
            os.close(self.dir_fd)
            self.dir_fd = None
        try:
            self.dir_fd = os.open(self.dir or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            self._no_nameserver(f"cannot open {self.dir}: {e.strerror}")

    def refresh(self) -> bool:
        """Read the file again if it is not the one read last.
        Return: True if upstream changed."""
        if self.dir_fd is None:
            return False
        try:
            fd = os.open(self.name, OPEN_FLAGS, dir_fd=self.dir_fd)
        except OSError as e:
            return self._set((None, None), None, f"cannot open {self.path}: {e.strerror}")
        try:
            st = os.fstat(fd)
            identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if identity == self.identity:
                return False
            if not stat.S_ISREG(st.st_mode):
                return self._set((None, None), identity, f"{self.path} is not a regular file")
            text = os.read(fd, READ_MAX).decode("utf-8", "replace")
        except OSError as e:
            return self._set((None, None), None, f"cannot read {self.path}: {e.strerror}")
        finally:
            os.close(fd)
        found = nameservers(text)
        return self._set(found, identity, None if any(found) else f"{self.path} names no nameserver")

    def _set(self, upstream, identity, problem: str | None) -> bool:
        changed = upstream != self.upstream
        self.upstream, self.identity = upstream, identity
        if problem:
            self._no_nameserver(problem)
        elif self.problem:
            self.problem = None
            log.warning("%s names a nameserver again: DNS goes to %s", self.path, self.describe())
        elif changed:
            log.debug("the host's nameserver: %s", self.describe())
        return changed

    def _no_nameserver(self, problem: str) -> None:
        """One log line per new problem: DNS queries to the DNS address are
        refused (the data plane answers them with ICMP port unreachable)."""
        if problem != self.problem:
            log.warning("%s: DNS queries are refused until it names a nameserver", problem)
        self.problem = problem

    def describe(self) -> str:
        """The nameserver DNS goes to, in words."""
        v4, v6 = self.upstream
        return str(v4 or v6) if (v4 or v6) else "none"

    def close(self) -> None:
        if self.dir_fd is not None:
            os.close(self.dir_fd)
            self.dir_fd = None


class FixedResolver:
    """A nameserver given on the command line (pasta's --dns-host): the
    HostResolver interface, with nothing to read and nothing that changes."""

    def __init__(self, upstream4: ipaddress.IPv4Address | None, upstream6: ipaddress.IPv6Address | None):
        self.upstream = (upstream4, upstream6)
        self.dir_fd: int | None = None

    def refresh(self) -> bool:
        return False

    def reopen_dir(self) -> None:
        """Nothing to reopen."""

    def describe(self) -> str:
        return str(self.upstream[0] or self.upstream[1])

    def close(self) -> None:
        """Nothing to close."""
