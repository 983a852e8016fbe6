"""Entry point of the `slirpd` command: parse, set up, signal readiness, serve.

Start-up time is every container's wait (issue 19), so modules are imported
where they are needed: what a mode or an option alone uses (the sandbox,
seccomp, `-- COMMAND`, the API socket, BESS, the subcommands) only when it is
asked for.  Everything the serving daemon uses is imported before the
sandbox and seccomp start (after them no file can be opened), so no import
waits inside a function that runs while serving.  The guest is configured by
the namespace helper (netns.TapHelper) while the daemon sets up.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import stat
import sys

from slirpd import cli, fdlimit, log as logmod
from slirpd._linux import SetupError
from slirpd.dhcp import DhcpServer, slirp_settings
from slirpd.forward import Forwards
from slirpd.notify import Notifier
from slirpd.config import Config
from slirpd.log import log
from slirpd.netns import TapHelper, TargetNamespaces, tap_has_vnet_hdr
from slirpd.resolver import HostResolver


def _check_fd(fd: int | None, name: str) -> None:
    if fd is None:
        return
    try:
        os.fstat(fd)
    except OSError:
        raise SetupError(f"{name} {fd} is not an open file descriptor") from None


def _signal_ready(fd: int | None) -> None:
    """-r FD: write "1" and close it, as slirp4netns does."""
    if fd is None:
        return
    try:
        os.write(fd, b"1")
    except OSError as e:
        log.warning("cannot write to the ready fd %d: %s", fd, e.strerror)
    finally:
        os.close(fd)


def target_pidfd(cfg: Config) -> int | None:
    """In pid mode, a pidfd that becomes readable when the target exits."""
    if cfg.target_type != "netns" or cfg.netns_type != "pid":
        return None
    try:
        return os.pidfd_open(int(cfg.target))
    except ProcessLookupError:
        raise SetupError(f"no such process: {cfg.target}") from None
    except OSError as e:
        raise SetupError(f"cannot watch process {cfg.target}: {e.strerror}") from None


def _dataplane(cfg: Config, fd: int, resolver: HostResolver | None, vnet_hdr: bool = False):
    """A Dataplane serving fd (which it then owns; closed here on failure),
    its DNS address forwarding to resolver's nameserver (None: DNS off);
    vnet_hdr: fd is a TAP opened with IFF_VNET_HDR (offloads on).  The soft
    descriptor limit is raised first, and the data plane gets its share of
    it (fdlimit.py)."""
    from slirpd.dataplane import Dataplane

    params = cfg.dataplane_params(vnet_hdr, resolver.upstream if resolver else (None, None))
    params.sock_budget = fdlimit.socket_budget(fdlimit.raise_nofile())
    log.debug("descriptors: the data plane's flows and forwards may hold %d host sockets", params.sock_budget)
    try:
        return Dataplane(params, fd)
    except OSError as e:
        os.close(fd)
        raise SetupError(f"cannot start the data plane: {e.strerror}") from None


def _start_pcap(cfg: Config, dp) -> None:
    """--pcap: open the capture file (before any sandbox hides it) and hand
    it to the data plane, which writes it from then on."""
    if cfg.pcap is None:
        return
    try:
        fd = os.open(cfg.pcap, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        why = "a symbolic link: give the file it points to" if e.errno == errno.ELOOP else e.strerror
        raise SetupError(f"--pcap {cfg.pcap}: {why}") from None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o600)  # the guest's traffic: an existing file kept its mode
        dp.pcap_start(fd, cfg.pcap_max_size)
    except OSError as e:
        os.close(fd)
        raise SetupError(f"--pcap {cfg.pcap}: {e.strerror}") from None
    log.debug("capturing frames into %s (at most %d bytes)", cfg.pcap, cfg.pcap_max_size)


def run(cfg: Config) -> int:
    """Set up the TAP and the data plane for cfg and serve it. Return: exit status."""
    _check_fd(cfg.exit_fd, "exit-fd")
    _check_fd(cfg.ready_fd, "ready-fd")
    if cfg.enable_seccomp:
        from slirpd import seccomp

        seccomp.check_available()
    if cfg.enable_sandbox:
        from slirpd import sandbox

        sandbox.check_resolv_conf()
    if cfg.target_type == "bess":
        return _run_bess(cfg)
    with contextlib.ExitStack() as cleanup:
        command = None
        if cfg.command is not None or cfg.create_netns:
            from slirpd import standalone
        if cfg.command is not None:
            command = standalone.Command(list(cfg.command))
            cleanup.callback(command.abort)
            cfg = cfg._replace(target=str(command.pid), netns_type="pid", configure=True)
        if cfg.create_netns:
            standalone.create_netns(cfg.create_netns)
            cleanup.callback(standalone.release_netns, cfg.create_netns)
        status = _serve(cfg, cleanup, command)
        return status if command is None else command.wait_status()


def _serve(cfg: Config, cleanup: contextlib.ExitStack, command) -> int:
    """Attach to cfg's target and serve it until told to stop (or, with a
    command, until it exits). Return: the daemon's exit status."""
    nsocks = None
    if cfg.auto_publish:
        from slirpd.nsports import NamespaceSockets
        from slirpd.portspec import Spec

        nsocks = NamespaceSockets(Spec("none"), Spec("none"), False, diag=True)
    with TargetNamespaces(cfg) as ns:
        helper = tap_helper(cfg, cleanup, ns, nsocks)  # configures the guest while the rest is set up
        from slirpd.daemon import Daemon  # (the data plane too) imported while the helper works

        notifier = cleanup.enter_context(contextlib.closing(Notifier()))  # connected before the sandbox hides it
        resolver = _resolver(cfg, cleanup)
        pidfd = target_pidfd(cfg)
        if pidfd is not None:
            cleanup.callback(os.close, pidfd)
        dp, forwards, diag_fd = attach(cfg, cleanup, helper, resolver, nsocks)
        _publish(cfg, forwards)
        tasks = []
        if diag_fd is not None:
            from slirpd.autofwd import AutoForwarder, PortWatcher

            auto = AutoForwarder(PortWatcher(diag_fd), forwards, ("tcp", "udp"),
                                 [(ipaddress.IPv4Address("0.0.0.0"), cfg.guest, False)],
                                 {"tcp": cfg.auto_publish.exclude, "udp": cfg.auto_publish.exclude})
            cleanup.callback(auto.close)
            tasks.append(auto)
        dhcp = DhcpServer(slirp_settings(cfg))
        api = None
        if cfg.api_socket:
            from slirpd.api import Api, ApiServer

            api = ApiServer(cfg.api_socket, Api(forwards, dhcp))
            if tasks:
                api.api.stats_sections["auto"] = tasks[0].stats
            cleanup.callback(api.close)
        lock_down(cfg, ns, resolver)
    status = f"serving {cfg.tapname} of {cfg.target}: {cfg.cidr}, gateway {cfg.gateway}, DNS {cfg.dns}, MTU {cfg.mtu}"
    if cfg.enable_ipv6:
        status += f"; IPv6 {cfg.net6}, gateway {cfg.gateway6}, DNS {cfg.dns6}"
    log.debug("%s", status)

    def on_ready():
        _signal_ready(cfg.ready_fd)
        if command is not None:
            command.start(None if cfg.disable_dns else f"nameserver {cfg.dns}\n" +
                          (f"nameserver {cfg.dns6}\n" if cfg.enable_ipv6 else ""))
        notifier.send("READY=1", f"STATUS={status}")

    daemon = Daemon(dp, exit_fd=cfg.exit_fd, target_pidfd=pidfd, api=api, notifier=notifier,
                    forward_signals_to=command.pid if command else None, dhcp=dhcp, resolver=resolver, tasks=tasks)
    if cfg.enable_seccomp:  # the last setup step: nothing is set up after this
        from slirpd import seccomp

        seccomp.enter(command_pid=command.pid if command else None, create_netns=cfg.create_netns is not None,
                      resolv_dir_fd=resolver and resolver.dir_fd)
    helper.configured()  # the guest is configured: ready from now on
    return daemon.run(on_ready=on_ready)


def tap_helper(cfg: Config, cleanup: contextlib.ExitStack, ns: TargetNamespaces, nsocks=None,
                configure=None) -> TapHelper:
    """The namespace helper for cfg's target (netns.TapHelper), at work from
    now on: in the target's namespaces it opens the TAP, configures the
    guest with --configure, then runs configure() and opens nsocks'
    sockets (nsports.NamespaceSockets), if given.  Reaped by cleanup."""
    def in_namespace():
        if configure is not None:
            configure()
        return nsocks.open() if nsocks is not None else []

    helper = TapHelper(cfg, ns, in_namespace, nsocks.count if nsocks is not None else 0)
    cleanup.callback(helper.close)
    return helper


def attach(cfg: Config, cleanup: contextlib.ExitStack, helper: TapHelper, resolver, nsocks=None,
           freebind: bool = False):
    """Start the data plane on the TAP the namespace helper opens (capturing
    with --pcap) and the table of forwards (freebind: pasta's --freebind),
    all undone by cleanup; with nsocks, wait for the helper to be done and
    register the sockets it opened in the namespace.  Return: (data plane,
    forwards, nsocks' sock_diag fd, the caller's to close, or None)."""
    tap_fd = helper.tap_fd()
    dp = cleanup.enter_context(_dataplane(cfg, tap_fd, resolver, tap_has_vnet_hdr(tap_fd)))
    _start_pcap(cfg, dp)
    forwards = Forwards(cfg, dp, freebind)
    cleanup.callback(forwards.close)
    if nsocks is None:
        return dp, forwards, None
    cleanup.callback(nsocks.close)
    ns_fds = helper.configured()
    return dp, forwards, nsocks.attach(dp, ns_fds, forwards.reserve_ids(len(ns_fds)))


def lock_down(cfg: Config, ns: TargetNamespaces, resolver) -> None:
    """--enable-sandbox, the last step inside the target's namespaces: it
    closes ns (no namespace fd survives the pivot), and the resolver's
    directory is opened again inside (the sandbox's /etc: nothing outside
    the new root stays open)."""
    if cfg.enable_sandbox:
        from slirpd import sandbox

        sandbox.enter(ns)
        if resolver is not None:
            resolver.reopen_dir()


def _resolver(cfg: Config, cleanup: contextlib.ExitStack) -> HostResolver | None:
    """The host's nameserver, followed while serving; None with --disable-dns."""
    if cfg.disable_dns:
        return None
    resolver = HostResolver()
    cleanup.callback(resolver.close)
    return resolver


def _publish(cfg: Config, forwards: Forwards) -> None:
    """--publish: the forwards asked for on the command line."""
    for proto, pmap in cfg.publish:
        try:
            forwards.add(proto, pmap.addr, pmap.ports, cfg.guest, pmap.to_first)
        except OSError as e:
            port = f" (port {e.filename})" if len(pmap.ports) > 1 else ""
            raise SetupError(f"--publish {pmap.addr}:{pmap.ports}:{pmap.to}/{proto}: {e.strerror}{port}") from None


def _run_bess(cfg: Config) -> int:
    """--target-type=bess: ready once listening, then serve the one peer
    (its socket file is removed once it is connected)."""
    from slirpd import bess, sandbox, seccomp
    from slirpd.daemon import Daemon

    listener = bess.listen(cfg.target)
    try:
        peer_fd = bess.accept_peer(listener, cfg.exit_fd, lambda: _signal_ready(cfg.ready_fd))
    finally:
        # Only one peer is served: nobody may connect after it, and the
        # daemon needs no name of the host's once serving (--enable-sandbox
        # hides them, --enable-seccomp allows no unlink)
        listener.close()
        try:
            os.unlink(cfg.target)
        except OSError:
            pass
    if peer_fd is None:
        return 0
    log.debug("BESS peer connected on %s", cfg.target)
    with contextlib.ExitStack() as cleanup:
        resolver = _resolver(cfg, cleanup)
        dp = cleanup.enter_context(_dataplane(cfg, peer_fd, resolver))
        _start_pcap(cfg, dp)
        if cfg.enable_sandbox:
            sandbox.enter()
            if resolver is not None:
                resolver.reopen_dir()
        daemon = Daemon(dp, exit_fd=cfg.exit_fd, dhcp=DhcpServer(slirp_settings(cfg)), resolver=resolver)
        if cfg.enable_seccomp:
            seccomp.enter(resolv_dir_fd=resolver and resolver.dir_fd)
        return daemon.run()


def main(argv: list[str] | None = None) -> int:
    """The `slirpd` command (argv: its arguments, sys.argv's by default),
    or the subcommand it names (cli.subcommand(): pasta's command line, also
    when called by that name, ctl, install-unit, enter). Return: the process
    exit status; as the command itself (argv None), a daemon's run ends the
    process (leave())."""
    argv_given = argv is not None
    prog, argv = (cli.PROG, argv) if argv_given else (sys.argv[0], sys.argv[1:])
    run_subcommand = cli.subcommand(argv, prog)
    if run_subcommand is not None:
        return run_subcommand()
    try:
        parsed = cli.parse_args(argv)
    except cli.UsageError as e:
        print(f"{cli.PROG}: {e}", file=sys.stderr)
        return 1
    if isinstance(parsed, str):
        sys.stdout.write(parsed)
        return 0
    logmod.setup(parsed.debug)
    status = run_or_fail(run, parsed)
    if argv_given:
        return status
    leave(status)


def leave(status: int) -> None:
    """Exit with status now, without Python's finalization: the daemon has
    closed what it opened and its log writes whole lines, so tearing down
    every module only makes the caller wait (6 ms of `slirpd -- true`'s run
    here)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def run_or_fail(run_fn, cfg) -> int:
    """run_fn(cfg)'s exit status; a SetupError is one line on the log and
    status 1, an interrupt during setup status 0."""
    try:
        return run_fn(cfg)
    except SetupError as e:
        log.error("%s", e)
        return 1
    except KeyboardInterrupt:
        return 0
