"""pasta's `--host-lo-to-ns-lo`: keep the data plane's pools of sockets of the
guest's namespace filled.

With the option, a -t connection from the host's loopback is spliced to the
namespace's 127.0.0.1 or ::1 at the forward's port (csrc/nslo.c), through an
unconnected TCP socket that was made inside the namespace: the daemon never
joins it.  nsbinder.py's helper makes them (OP_SOCKETS); this task, run by
the daemon between event-loop batches, asks the data plane how many each
family's pool takes now (none while more than half full) and hands them
over.  The data plane raises NOTICE_NS_LO_LOW when a pool falls to half, which
ends its wait, so the task runs before the pool can run dry but in a burst.
A helper gone stops the refilling, logged once; connections that then
find a pool empty are reset and counted (drop_ns_lo_pool_empty).
"""

from __future__ import annotations

from slirpd.log import log
from slirpd.nsbinder import HelperGone, NamespaceBinder


class LoopbackPool:
    """The refilling task (daemon.Daemon's tasks: timeout(), expire())."""

    def __init__(self, dp, binder: NamespaceBinder, versions):
        self.dp = dp
        self.binder = binder
        self.versions = tuple(versions)
        self.stopped = False
        self.warned = False  # a failure other than the helper's end was logged
        dp.ns_lo_enable()
        self.expire()

    def timeout(self) -> float | None:
        """Never due by time: the pools are looked at after each wait of the
        data plane, which NOTICE_NS_LO_LOW ends when one runs low."""
        return None

    def expire(self) -> None:
        """Fill each pool that is at most half full."""
        for version in self.versions:
            wanted = 0 if self.stopped else self.dp.ns_lo_wanted(version)
            while wanted > 0:
                try:
                    socks = self.binder.sockets(version, wanted)
                except HelperGone as e:
                    log.warning("--host-lo-to-ns-lo: no more sockets in the namespace (%s)", e)
                    self.stopped = True
                    return
                except OSError as e:  # tried again after the next batch
                    if not self.warned:
                        log.warning("--host-lo-to-ns-lo: no socket in the namespace now (%s)", e)
                        self.warned = True
                    return
                for sock in socks:
                    self.dp.ns_lo_add(sock)
                wanted -= len(socks)
