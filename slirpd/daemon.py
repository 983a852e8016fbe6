"""The event loop: one wake-up, one batch.

SIGTERM and SIGINT end it (exit status 0), or with `-- COMMAND` are passed on
to the command (SIGHUP too); SIGUSR1 writes every data plane
counter, and the host sockets' state, to stderr as one JSON line ("slirpd:
counters {...}").

Python's control fds (the exit fd, a signal wake-up pipe, the target
process's pidfd or a watch on the target's namespace file, the API sockets)
live in an epoll selector whose own fd is
handed to the data plane (dp.watch()).  The loop blocks in C (dp.wait()),
which serves frames, host sockets and flow timers by itself, wake-up after
wake-up, and comes back only when Python has work: one of its fds is
readable, a signal arrived, the data plane raised a notice, or a deadline of
the API, the notifier or another task (automatic forwarding's scans) is
due.  A packet's way through slirpd costs no
Python.  Nothing here touches a frame.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket

from slirpd.dataplane import (NOTICE_CTL_FRAMES, NOTICE_DNS_USED, NOTICE_NS_LO_LOW, NOTICE_PCAP_STOPPED, NOTICE_PING_FORBIDDEN,
                              NOTICE_SOCK_SHORT, PCAP_FULL, Dataplane, TapGone)
from slirpd.dhcpv6 import ETH_TYPE_IP6
from slirpd.log import log

POLL_BUDGET = 256  # frames drained per wake-up


def compact_json(value) -> str:
    """value, a dict of counters (names to ints, bools or such dicts), as
    json.dumps(value, separators=(",", ":")) writes it.  Not json itself:
    its import, with the re module and the patterns it compiles, would add
    a tenth to the time slirpd takes to be ready (issue 19), and the
    counters' names (the data plane's: letters, digits, "_") need no
    escaping.  Raises TypeError for anything else."""
    if isinstance(value, dict):
        for name in value:
            if not (isinstance(name, str) and name.isidentifier() and name.isascii()):
                raise TypeError(f"not a counter's name: {name!r}")
        return "{" + ",".join(f'"{name}":{compact_json(v)}' for name, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"not a counter: {value!r}")


class Daemon:
    """Serves one TAP until a signal, the exit fd, or the guest goes away."""

    def __init__(self, dp: Dataplane, exit_fd: int | None = None, target_pidfd: int | None = None, api=None,
                 notifier=None, forward_signals_to: int | None = None, dhcp=None, resolver=None, tasks=(),
                 target_watch=None, dhcpv6=None):
        """tasks: objects with timeout() (seconds until due, or None) and
        expire() (run if due), called between batches; target_watch: an
        object with fileno() and gone() (True once the target went away,
        checked when the fd is readable); dhcp, dhcpv6: the servers
        (dhcp.py, dhcpv6.py; None: not served) the control frames of each
        IP version go to."""
        self.dp = dp
        self.tasks = tuple(tasks)
        self.target_watch = target_watch
        self.dhcp = dhcp
        self.dhcpv6 = dhcpv6
        self.resolver = resolver
        self.forward_signals_to = forward_signals_to
        self.api = api
        self.notifier = notifier
        self.exit_fd = exit_fd
        self.target_pidfd = target_pidfd
        self.stopping = False
        self.dump_requested = False
        self.sel = selectors.EpollSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        dp.watch(self.sel.fileno())
        self.sel.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        if exit_fd is not None:
            self.sel.register(exit_fd, selectors.EVENT_READ, self._on_exit_fd)
        if target_pidfd is not None:
            self.sel.register(target_pidfd, selectors.EVENT_READ, self._on_target_exit)
        if target_watch is not None:
            self.sel.register(target_watch.fileno(), selectors.EVENT_READ, self._on_target_watch)
        if api is not None:
            api.attach(self.sel)

    def _on_dataplane(self, max_wait: float | None) -> None:
        """Serve the data plane until Python has work, max_wait seconds at most."""
        try:
            self.dp.wait(POLL_BUDGET, max_wait)
        except TapGone:
            log.warning("the TAP device is gone (namespace or interface removed): exiting")
            self.stopping = True
        notices = self.dp.notices()
        if notices & NOTICE_CTL_FRAMES and (self.dhcp is not None or self.dhcpv6 is not None):
            self._serve_dhcp()
        if notices & NOTICE_DNS_USED and self.resolver is not None:
            self._follow_resolver()
        # NOTICE_NS_LO_LOW only ends the wait: the tasks run next (nslopool.py)
        if notices & ~(NOTICE_CTL_FRAMES | NOTICE_DNS_USED | NOTICE_NS_LO_LOW):
            self._log_notices(notices)

    def _serve_dhcp(self) -> None:
        """Answer the batch of DHCP and DHCPv6 requests the data plane
        queued (by EtherType; a server that is None drops its frames)."""
        for frame in self.dp.ctl_frames():
            server = self.dhcpv6 if frame[12:14] == ETH_TYPE_IP6 else self.dhcp
            reply = server.handle(frame) if server is not None else None
            if reply is not None:
                try:
                    self.dp.ctl_send(reply)
                except OSError as e:
                    log.warning("DHCP reply not sent: %s", e.strerror)

    def _follow_resolver(self) -> None:
        """The guest uses DNS: if the host's resolver changed, say where DNS
        goes now (resolver.py)."""
        if self.resolver.refresh():
            self.dp.set_dns_upstream(*self.resolver.upstream)

    def _log_notices(self, notices: int) -> None:
        """One line per one-shot notice of the data plane."""
        if notices & NOTICE_PING_FORBIDDEN:
            log.warning("ping beyond the gateway is not possible: net.ipv4.ping_group_range does not "
                        "include this user's group (echo requests are dropped, see drop_ping_forbidden)")
        if notices & NOTICE_PCAP_STOPPED:
            state = self.dp.pcap_state()
            if state == PCAP_FULL:
                log.warning("packet capture stopped: the file reached --pcap-max-size")
            else:
                log.warning("packet capture stopped: cannot write the file: %s (see pcap_write_errors)",
                            os.strerror(-state))
        if notices & NOTICE_SOCK_SHORT:
            s = self.dp.sockets()
            log.warning("host sockets ran short (the guest's flows may hold %d of %d, the rest is kept for "
                        "forwarded ports): idle UDP and ping flows are recycled, what still finds none is "
                        "refused; see get_stats \"sockets\"", s["guest_max"], s["budget"])

    def _on_wake(self) -> None:
        try:
            while self._wake_r.recv(64):
                pass
        except BlockingIOError:
            pass

    def _on_exit_fd(self) -> None:
        log.debug("event on the exit fd: exiting")
        self.stopping = True

    def _on_target_exit(self) -> None:
        if self.forward_signals_to is None:
            log.warning("the target process exited: exiting")
        self.stopping = True

    def _on_target_watch(self) -> None:
        if self.target_watch.gone():
            log.warning("the target's namespace file is gone: exiting")
            self.stopping = True

    def _on_dump_signal(self, _signum, _frame) -> None:
        self.dump_requested = True

    def _dump_counters(self) -> None:
        """SIGUSR1: one line on stderr with every data plane counter, and the
        host sockets' state under "sockets", as JSON; with --debug a second
        line, the open flows by state and the closed ones by reason."""
        self.dump_requested = False
        line = {**self.dp.counters(), "sockets": self.dp.sockets()}
        log.warning("counters %s", compact_json(line))
        log.debug("flows %s", compact_json({"states": self.dp.flow_states(),
                                            "closed": self.dp.flows_closed()}))

    def _on_signal(self, signum, _frame) -> None:
        if self.forward_signals_to is not None:
            # -- COMMAND: the command decides; we stop when it exits
            os.kill(self.forward_signals_to, signum)
            return
        log.debug("signal %s: exiting", signal.Signals(signum).name)
        self.stopping = True

    def run(self, on_ready=None) -> int:
        """Serve until asked to stop; on_ready() is called once the signal
        handlers are in place, just before the first wait.
        Return: the exit status (0)."""
        old_wakeup = signal.set_wakeup_fd(self._wake_w.fileno())
        old_handlers = {s: signal.signal(s, self._on_signal) for s in self._stop_signals()}
        old_handlers[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, self._on_dump_signal)
        try:
            if on_ready is not None:
                on_ready()
            while not self.stopping:
                self._on_dataplane(self._timeout())
                events = self.sel.select(0)
                if self.api is not None:
                    self.api.expire()
                if self.notifier is not None:
                    self.notifier.ping_if_due()
                for task in self.tasks:
                    task.expire()
                for key, _events in events:
                    key.data()
                    if self.stopping:
                        break
                if self.dump_requested:
                    self._dump_counters()
        finally:
            if self.notifier is not None:
                self.notifier.send("STOPPING=1", "STATUS=stopping")
            signal.set_wakeup_fd(old_wakeup)
            for s, h in old_handlers.items():
                signal.signal(s, h)
            self.close()
        return 0

    def _stop_signals(self) -> tuple[int, ...]:
        """The signals that stop the daemon, or with `-- COMMAND` are passed
        on to it: SIGTERM and SIGINT, and SIGHUP for a command.  A command
        keeps the signals slirpd was started with ignored (nohup's SIGHUP, a
        background job's SIGINT), so those stay ignored here too: passing
        them on would do nothing, and catching them would break nohup."""
        if self.forward_signals_to is None:
            return (signal.SIGTERM, signal.SIGINT)
        return tuple(s for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
                     if signal.getsignal(s) is not signal.SIG_IGN)

    def _timeout(self) -> float | None:
        """How long the data plane may serve before Python's next deadline:
        an API client's, the notifier's watchdog ping, a task's (the data
        plane keeps its own timers)."""
        timeouts = [t for t in (self.api.timeout() if self.api else None,
                                self.notifier.timeout() if self.notifier else None,
                                *(task.timeout() for task in self.tasks)) if t is not None]
        return min(timeouts) if timeouts else None

    def close(self) -> None:
        """Release the selector and the wake-up pair (not the data plane)."""
        self.sel.close()
        self._wake_r.close()
        self._wake_w.close()
