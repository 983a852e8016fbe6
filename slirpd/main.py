"""Entry point of the `slirpd` command: parse, set up, signal readiness, serve."""

from __future__ import annotations

import os
import sys

from slirpd import cli, log as logmod
from slirpd.config import Config
from slirpd.log import log
from slirpd.netns import SetupError, open_tap


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


def _target_pidfd(cfg: Config) -> int | None:
    """In pid mode, a pidfd that becomes readable when the target exits."""
    if cfg.netns_type != "pid":
        return None
    try:
        return os.pidfd_open(int(cfg.target))
    except ProcessLookupError:
        raise SetupError(f"no such process: {cfg.target}") from None
    except OSError as e:
        raise SetupError(f"cannot watch process {cfg.target}: {e.strerror}") from None


def run(cfg: Config) -> int:
    """Set up the TAP and the data plane for cfg and serve it. Return: exit status."""
    from slirpd.daemon import Daemon
    from slirpd.dataplane import Dataplane

    _check_fd(cfg.exit_fd, "exit-fd")
    _check_fd(cfg.ready_fd, "ready-fd")
    pidfd = _target_pidfd(cfg)
    tap_fd = open_tap(cfg)
    dp = Dataplane(cfg.dataplane_params(), tap_fd)
    log.debug("serving %s: %s, gateway %s, DNS %s, MTU %d", cfg.tapname, cfg.cidr, cfg.gateway, cfg.dns, cfg.mtu)
    try:
        daemon = Daemon(dp, exit_fd=cfg.exit_fd, target_pidfd=pidfd)
        return daemon.run(on_ready=lambda: _signal_ready(cfg.ready_fd))
    finally:
        dp.close()
        if pidfd is not None:
            os.close(pidfd)


def main(argv: list[str] | None = None) -> int:
    """The `slirpd` command. Return: the process exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        parsed = cli.parse_args(argv)
    except cli.UsageError as e:
        print(f"{cli.PROG}: {e}", file=sys.stderr)
        return 1
    if isinstance(parsed, str):
        sys.stdout.write(parsed)
        return 0
    logmod.setup(parsed.debug)
    try:
        return run(parsed)
    except SetupError as e:
        log.error("%s", e)
        return 1
    except KeyboardInterrupt:
        return 0
