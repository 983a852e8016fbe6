"""Small TCP client/server for the latency, connection-rate and open-connections
benchmarks (standard library only, so it runs with any python3).

    tcpbench.py serve PORT                 echo server on 127.0.0.1:PORT
    tcpbench.py latency HOST PORT COUNT    1-byte ping-pong over one connection
    tcpbench.py connrate HOST PORT SECONDS connect, send 1 byte, read the echo, close; repeated
    tcpbench.py hold HOST PORT COUNT       open COUNT connections, print "ready", close on a stdin line

The server is one thread on selectors: it echoes whatever it reads and closes
on EOF.  The clients print one JSON line with their result, or {"error": why}.  connrate reads the
echo before closing so that every counted connection carried data both ways.
"""

from __future__ import annotations

import json
import resource
import selectors
import socket
import statistics
import sys
import time


def raise_fd_limit():
    """Lift the soft open-files limit to the hard one (1,000 connections need it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve(port: int):
    """Echo server on 127.0.0.1:port and [::1]:port (the -v6 runs), forever."""
    sel = selectors.DefaultSelector()
    lsocks = [socket.create_server((addr, port), family=family, backlog=4096)
              for addr, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6))]
    for lsock in lsocks:
        lsock.setblocking(False)
        sel.register(lsock, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            if sock in lsocks:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    continue
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)
                if data:
                    sock.send(data)
                    continue
            except OSError:
                pass
            sel.unregister(sock)
            sock.close()


def connect(host: str, port: int) -> socket.socket:
    """A connected TCP socket with Nagle off and a 10 s timeout on every call."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def latency(host: str, port: int, count: int) -> dict:
    """Round-trip times of count 1-byte ping-pongs: median and p99 in microseconds."""
    sock = connect(host, port)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        sock.sendall(b"x")
        if sock.recv(1) != b"x":
            raise RuntimeError("echo lost")
        times.append(time.perf_counter() - start)
    sock.close()
    times.sort()
    return {"median_us": statistics.median(times) * 1e6, "p99_us": times[int(len(times) * 0.99)] * 1e6}


def connrate(host: str, port: int, seconds: float) -> dict:
    """Short connections per second over seconds: connect, send 1 byte, read it back, close."""
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        sock = connect(host, port)
        sock.sendall(b"x")
        if sock.recv(1) != b"x":
            raise RuntimeError("echo lost")
        sock.close()
        done += 1
    return {"per_sec": done / (time.perf_counter() - start)}


def hold(host: str, port: int, count: int) -> dict:
    """Open count connections, check each with one echo, report ready and keep
    them open until a line arrives on stdin."""
    socks = []
    for _ in range(count):
        sock = connect(host, port)
        sock.sendall(b"x")
        if sock.recv(1) != b"x":
            raise RuntimeError("echo lost")
        socks.append(sock)
    print("ready", flush=True)
    sys.stdin.readline()
    for sock in socks:
        sock.close()
    return {"held": len(socks)}


def main(argv: list[str]):
    """Dispatch to one mode; client modes print their result as JSON."""
    raise_fd_limit()
    mode, args = argv[0], argv[1:]
    if mode == "serve":
        serve(int(args[0]))
        return
    clients = {"latency": (latency, int), "connrate": (connrate, float), "hold": (hold, int)}
    func, conv = clients[mode]
    try:
        result = func(args[0], int(args[1]), conv(args[2]))
    except TimeoutError:
        result = {"error": "timeout (10s on a socket call)"}
    except (OSError, RuntimeError) as e:
        result = {"error": f"failed: {e}"}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
