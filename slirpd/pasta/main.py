"""slirpd as pasta: `pasta ARGS...` (a link named pasta to slirpd) or
`slirpd pasta ARGS...`.

Readiness is pasta's: everything is set up first (the namespace joined, the
TAP made and with --config-net configured, the host ports bound), then
slirpd forks; the parent writes --pid FILE and exits 0, and the daemon, a
new session with stdin, stdout and stderr on /dev/null (podman reads them to
EOF), serves, logging to syslog (log.py).  It answers DHCP as pasta does
(net.dhcp_settings(), dhcp.py) unless --no-dhcp, and DHCPv6
(net.dhcpv6_settings(), dhcpv6.py) unless --no-dhcpv6.  With --foreground
(rootlesskit) or a COMMAND there is no fork.
A failure before that is one line on stderr and exit status 1.

The daemon quits on SIGTERM, when a PID target exits, when the namespace
file of --netns is removed (nswatch.py; podman unmounts and removes it), and
with a COMMAND when the command exits (with its status).  It always runs as
--enable-sandbox --enable-seccomp would make it (pasta isolates itself
too); without libseccomp it says so in one line and runs unfiltered.

Nothing waits on the way to the exit 0 that only the daemon needs (issue
19): the seccomp library is loaded (pyseccomp, and typing with it) after
the fork, before the sandbox; the namespace-file watch (ctypes) only with
--netns, `-- COMMAND`'s module only with a command; netlink is rtnl.py's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys

from slirpd import log as logmod, seccomp
from slirpd._linux import SetupError
from slirpd.autofwd import AutoForwarder, PortWatcher
from slirpd.config import Config
from slirpd.log import log
from slirpd.main import attach, lock_down, run_or_fail, tap_helper, target_pidfd
from slirpd.netns import TargetNamespaces
from slirpd.nsports import NamespaceSockets
from slirpd.pasta import cli, net
from slirpd.resolver import FixedResolver, HostResolver

ANY = {4: ipaddress.IPv4Address("0.0.0.0"), 6: ipaddress.IPv6Address("::")}


def _open_pid_file(path: str | None) -> int | None:
    """--pid FILE, opened (truncated) at setup as pasta does, written later."""
    if path is None:
        return None
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise SetupError(f"Couldn't open PID file {path}: {e.strerror}") from None


def _write_pid(fd: int | None, pid: int) -> None:
    if fd is not None:
        os.write(fd, f"{pid}\n".encode())
        os.close(fd)


def _daemonize(pid_fd: int | None) -> None:
    """Fork: the parent writes the daemon's pid to --pid FILE and exits 0
    (pasta's readiness); the daemon goes on in a new session, with stdin,
    stdout and stderr on /dev/null, and logs only to syslog (log.py)."""
    devnull = os.open("/dev/null", os.O_RDWR)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        _write_pid(pid_fd, pid)
        os._exit(0)
    if pid_fd is not None:
        os.close(pid_fd)
    os.setsid()
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    log.to_syslog_only()


def _release_netns(ns: TargetNamespaces) -> None:
    """Close the target's network namespace file once the helper is done in
    it, before pasta's exit 0: podman may unmount that file as soon as pasta
    has exited, and a descriptor still open on it (until the sandbox closes
    the rest, after seccomp's library is loaded) would make the unmount fail
    with EBUSY.  The user namespace's stays, for the sandbox."""
    os.close(ns.netns_fd)
    ns.netns_fd = -1  # TargetNamespaces.close() skips it


def _check_target(args: cli.PastaArgs) -> None:
    """Fail as pasta fails on a target whose namespaces it cannot open: a
    PID's user namespace (unless --userns), --netns PATH."""
    paths = [(args.netns, "network")] if args.netns is not None else []
    if args.pid is not None and args.userns is None:
        paths.append((f"/proc/{args.pid}/ns/user", "user"))
    for path, kind in paths:
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        except OSError as e:
            raise SetupError(f"Couldn't open {kind} namespace {path}: {e.strerror}") from None


def _resolver(args: cli.PastaArgs, cleanup: contextlib.ExitStack):
    """The host's nameserver for --dns-forward: --dns-host's, or the
    resolv.conf's, followed; None with -D none."""
    if args.dns_none:
        return None
    if args.dns_host4 or args.dns_host6:
        return FixedResolver(args.dns_host4, args.dns_host6)
    resolver = HostResolver()
    cleanup.callback(resolver.close)
    return resolver


def _config(args: cli.PastaArgs, network, setup: net.Setup, command) -> Config:
    """The daemon's settings for pasta's args and network (with seccomp:
    whether it is available is known only once _serve() has loaded it)."""
    if command is not None:
        target, netns_type = str(command.pid), "pid"
    elif args.pid is not None:
        target, netns_type = str(args.pid), "pid"
    else:
        target, netns_type = args.netns, "path"
    return Config(target=target, tapname=setup.ifname, netns_type=netns_type, userns_path=args.userns,
                  mtu=setup.mtu or 1500, model=network, pcap=args.pcap, enable_sandbox=True,
                  enable_seccomp=True, outbound_addr=args.outbound4, outbound_addr6=args.outbound6,
                  disable_dns=not any(r.kind == "dns" for r in network.rules), debug=args.debug)


def _dhcp(args: cli.PastaArgs, network, setup: net.Setup, upstream: tuple):
    """pasta's DHCP server for the guest (net.dhcp_settings()), or None."""
    settings = net.dhcp_settings(args, network, setup, upstream)
    if settings is None:
        return None
    from slirpd.dhcp import DhcpServer

    return DhcpServer(settings)


def _dhcpv6(args: cli.PastaArgs, network, upstream: tuple):
    """pasta's DHCPv6 server for the guest (net.dhcpv6_settings()), or None."""
    settings = net.dhcpv6_settings(args, network, upstream)
    if settings is None:
        return None
    from slirpd.dhcpv6 import Dhcpv6Server

    return Dhcpv6Server(settings)


def _forward_in(args: cli.PastaArgs, network, forwards) -> None:
    """-t and -u: host ports to the guest's address of each client's family
    (both families on a port with no address given: one of them binding is
    enough, as in pasta).  Raises SetupError with pasta's message."""
    for proto, spec in (("tcp", args.tcp), ("udp", args.udp)):
        for pmap in spec.maps:
            versions = [v for v in ((pmap.addr.version,) if pmap.addr is not None else (4, 6))
                        if network.guest_for(v) is not None]
            errors = []
            for version in versions:
                host = pmap.addr if pmap.addr is not None else ANY[version]
                try:
                    forwards.add(proto, host, pmap.ports, network.guest_for(version), pmap.to_first, pmap.ifname,
                                 v6only=True)
                except OSError as e:
                    errors.append(e)
            if len(errors) == len(versions):
                port, why = (errors[0].filename, errors[0].strerror) if errors else \
                    (pmap.ports.first, "the guest has no address of that family")
                raise SetupError(f"Failed to bind port {port} ({why}) for option '-{proto[0]} {pmap.spec}'")


def _auto(args: cli.PastaArgs, network, forwards, diag_fd: int | None, nsocks: NamespaceSockets):
    """-t auto, -u auto: an AutoForwarder, or None."""
    protos = [p for p, spec in (("tcp", args.tcp), ("udp", args.udp)) if spec.mode == "auto"]
    if not protos or diag_fd is None:
        return None
    targets = [(ANY[v], network.guest_for(v), True) for v in (4, 6) if network.guest_for(v) is not None]
    return AutoForwarder(PortWatcher(diag_fd), forwards, protos, targets,
                         {p: nsocks.ports(p) for p in ("tcp", "udp")})


def _reverse_protos(args: cli.PastaArgs) -> list[str]:
    """The protocols of -T auto and -U auto."""
    return [p for p, spec in (("tcp", args.tcp_ns), ("udp", args.udp_ns)) if spec.mode == "auto"]


def _binder(args: cli.PastaArgs, ns: TargetNamespaces, cleanup: contextlib.ExitStack):
    """For -T/-U auto and --host-lo-to-ns-lo, the helper that binds sockets in the guest's
    namespaces (nsbinder.py), forked now, before the data plane is loaded
    (the pages the daemon writes after the fork become the helper's own);
    else None."""
    if not _reverse_protos(args) and not _host_lo_to_ns_lo(args):
        return None
    from slirpd.nsbinder import NamespaceBinder

    binder = NamespaceBinder(ns)
    cleanup.callback(binder.close)
    return binder


def _reverse_auto(args: cli.PastaArgs, network, binder, dp, forwards, cleanup: contextlib.ExitStack):
    """-T auto, -U auto (nsautofwd.py), leaving -t and -u's host ports
    alone: an AutoForwarder, or None."""
    if not _reverse_protos(args):
        return None
    from slirpd.nsautofwd import reverse_auto

    inward = {p: {port for m in spec.maps for port, _to in m.pairs()}
              for p, spec in (("tcp", args.tcp), ("udp", args.udp))}
    auto = reverse_auto(binder, dp, forwards, _reverse_protos(args), (4, 6) if network.ipv6 else (4,), inward)
    cleanup.callback(auto.close)
    return auto


def _host_lo_to_ns_lo(args: cli.PastaArgs) -> bool:
    """--host-lo-to-ns-lo, unless --no-splice (pasta's fwd_nat_from_host()
    splices nothing then, so the option does nothing)."""
    return args.host_lo_to_ns_lo and not args.no_splice


def _loopback_pool(args: cli.PastaArgs, network, binder, dp):
    """--host-lo-to-ns-lo: the task keeping its sockets of the namespace
    (nslopool.py), its pools filled now; else None."""
    if not _host_lo_to_ns_lo(args):
        return None
    from slirpd.nslopool import LoopbackPool

    return LoopbackPool(dp, binder, (4, 6) if network.ipv6 else (4,))


def run(args: cli.PastaArgs) -> int:
    """Set up, signal readiness as pasta does, serve. Return: exit status."""
    from slirpd.daemon import Daemon

    _check_target(args)
    try:
        cli.ns_ports(args)
    except cli.UsageError as e:
        raise SetupError(str(e)) from None
    with contextlib.ExitStack() as cleanup:
        pid_fd = _open_pid_file(args.pid_file)
        resolver = _resolver(args, cleanup)
        template = net.read_template(args.interface, args.ipv4, args.ipv6)
        upstream = resolver.upstream if resolver else (None, None)
        network, setup = net.model(args, template, upstream)
        dhcp = _dhcp(args, network, setup, upstream)
        dhcpv6 = _dhcpv6(args, network, upstream)
        command = None
        if args.command is not None:
            from slirpd import standalone

            command = standalone.Command(args.command)
            cleanup.callback(command.abort)
        cfg = _config(args, network, setup, command)
        pidfd = target_pidfd(cfg)
        watch = None
        if pidfd is not None:
            cleanup.callback(os.close, pidfd)
        elif args.netns_quit:
            from slirpd.nswatch import NamespaceFileWatch

            watch = NamespaceFileWatch(cfg.target)
            cleanup.callback(watch.close)
        auto = any(s.mode == "auto" for s in (args.tcp, args.udp))
        nsocks = NamespaceSockets(args.tcp_ns, args.udp_ns, network.ipv6, diag=auto)
        with TargetNamespaces(cfg) as ns:
            binder = _binder(args, ns, cleanup)
            helper = tap_helper(cfg, cleanup, ns, nsocks, lambda: net.configure(setup))
            dp, forwards, diag_fd = attach(cfg, cleanup, helper, resolver, nsocks, args.freebind)
            _forward_in(args, network, forwards)
            autofwd = _auto(args, network, forwards, diag_fd, nsocks)
            if autofwd is not None:
                cleanup.callback(autofwd.close)
            reverse = _reverse_auto(args, network, binder, dp, forwards, cleanup)
            if autofwd is not None and reverse is not None:
                autofwd.reverse, reverse.reverse = reverse, autofwd
            pool = _loopback_pool(args, network, binder, dp)
            tasks = [t for t in (autofwd, reverse, pool) if t is not None]
            helper.configured()  # pasta exits 0 only once the namespace is configured
            _release_netns(ns)
            if command is None and not args.foreground:
                _daemonize(pid_fd)
            else:
                _write_pid(pid_fd, os.getpid())
            cfg = cfg._replace(enable_seccomp=seccomp.available())  # loaded while the files are there
            lock_down(cfg, ns, resolver)
        daemon = Daemon(dp, target_pidfd=pidfd, target_watch=watch, resolver=resolver, dhcp=dhcp, dhcpv6=dhcpv6,
                        forward_signals_to=command.pid if command else None, tasks=tasks)
        if not cfg.enable_seccomp:
            log.warning("libseccomp is not available: serving without a seccomp filter")
        else:
            seccomp.enter(command_pid=command.pid if command else None, resolv_dir_fd=resolver and resolver.dir_fd)
        status = daemon.run(on_ready=(lambda: command.start(None)) if command else None)
        return status if command is None else command.wait_status()


def main(argv: list[str], prog: str = "pasta") -> int:
    """pasta's command line (without the program name; prog is argv[0], as
    pasta's messages show it). Return: the exit status."""
    try:
        parsed = cli.parse(argv, prog)
    except cli.UsageError as e:
        print(e, file=sys.stderr)
        return 1
    if isinstance(parsed, str):
        sys.stdout.write(parsed)
        return 0
    try:
        logmod.setup(parsed.debug, prefix="", path=parsed.log_file)
    except OSError as e:
        print(f"Couldn't open log file {parsed.log_file}: {e.strerror}", file=sys.stderr)
        return 1
    if parsed.log_file is None:
        log.open_syslog("pasta")  # as pasta (log.c): its lines go to syslog too
    return run_or_fail(run, parsed)
