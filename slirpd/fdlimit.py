"""Descriptors: the soft RLIMIT_NOFILE raised to the hard one at start, and
how it is shared between Python and the data plane.

Every guest flow holds a host socket, so the limit is what bounds them.  A
soft limit of 1024 is common and hard limits are much higher: slirpd raises
the soft limit to the hard one before the data plane starts.  (A `-- COMMAND`
was forked before that and keeps the caller's limit: programs that use
select() need a soft limit of 1024 at most.)

Of the limit, Python keeps a reserve for itself: CONTROL_FDS for its own
descriptors (stdio, the TAP, the two epoll sets, the notifier, the target's
pidfd, the capture file, the signal wake-up pair, the API listener and its
directory, the namespace descriptors during set-up: 12 with -a, --pcap and
a forward, tests/test_sockets.py counts them) and one per API client
(API_CLIENTS_MAX).
The rest is the data plane's socket budget (dp_config.sock_budget, see
csrc/flow.c, Host sockets), which its flows and forwards share, forwards
with a reserve of their own (DP_SOCK_FWD_RESERVE).  Under a small limit,
Python keeps at most half of it.
"""

from __future__ import annotations

import resource

from slirpd.config import API_CLIENTS_MAX
from slirpd.log import log

CONTROL_FDS = 32
CONTROL_RESERVE = CONTROL_FDS + API_CLIENTS_MAX
BUDGET_MAX = 1 << 30  # dp_config.sock_budget is a uint32_t; the flow table holds far fewer
NR_OPEN = "/proc/sys/fs/nr_open"


def raise_nofile() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (to fs.nr_open when the
    hard limit is unlimited, which the kernel refuses as a soft limit).
    Return: the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard
    if want == resource.RLIM_INFINITY:
        try:
            with open(NR_OPEN) as f:
                want = int(f.read())
        except (OSError, ValueError):
            want = soft
    if soft != resource.RLIM_INFINITY and want > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            log.debug("descriptors: soft limit raised from %d to %d", soft, want)
            soft = want
        except (OSError, ValueError) as e:
            log.debug("descriptors: soft limit stays %d: %s", soft, e)
    return soft


def socket_budget(limit: int) -> int:
    """The data plane's share of a descriptor limit: the limit less
    CONTROL_RESERVE, or half of it if that is less."""
    if limit == resource.RLIM_INFINITY:
        return BUDGET_MAX
    reserve = min(CONTROL_RESERVE, limit // 2)
    return max(1, min(limit - reserve, BUDGET_MAX))
