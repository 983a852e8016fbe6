"""Forwarded TCP ports: a hashing server in the guest, a hashing host client.

Both sides report the bytes and the SHA-256 of what each way carried, so a
test compares the two reports.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time

from lib.harness import as_user

SERVER = r"""
import hashlib, json, os, socket, sys, threading
port, down = int(sys.argv[1]), int(sys.argv[2])
blk = os.urandom((1 << 20) + 13)
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(256)
print("ready", flush=True)
lock = threading.Lock()

def serve(c, peer):
    tx = hashlib.sha256()
    def send():
        left = down
        while left:
            chunk = blk[:min(left, len(blk))]
            c.sendall(chunk)
            tx.update(chunk)
            left -= len(chunk)
        c.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=send)
    t.start()
    rx, n = hashlib.sha256(), 0
    while d := c.recv(1 << 16):
        rx.update(d)
        n += len(d)
    t.join()
    c.close()
    with lock:
        print(json.dumps({"peer": peer[0], "port": peer[1], "rx": n, "rx_sha": rx.hexdigest(),
                          "tx_sha": tx.hexdigest()}), flush=True)

while True:
    c, peer = ls.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
"""


class HashingGuestServer:
    """SERVER running in the guest; its JSON lines are collected by a thread."""

    def __init__(self, guest, port: int, down: int):
        enter = ["nsenter", f"--target={guest.pid}", "--user", "--net", "--mount", "--preserve-credentials", "--"]
        self.proc = subprocess.Popen(enter + [sys.executable, "-c", SERVER, str(port), str(down)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     **as_user(guest.user))
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.lines.get(timeout=10) == "ready", self.proc.stderr.read()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def results(self, n: int, timeout: float = 30) -> list[dict]:
        """The next n connection reports."""
        deadline = time.monotonic() + timeout
        return [json.loads(self.lines.get(timeout=max(0.1, deadline - time.monotonic()))) for _ in range(n)]

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=10)


def client(addr: str, port: int, up: int, bind: str | None = None, timeout: float = 60) -> dict:
    """Connect, send up bytes while reading to EOF; the same report as SERVER's,
    from the host's side."""
    blk = os.urandom((1 << 20) + 17)
    tx = hashlib.sha256()
    with socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET) as s:
        s.settimeout(timeout)
        if bind:
            s.bind((bind, 0))
        s.connect((addr, port))
        local = s.getsockname()

        def send():
            left = up
            while left:
                chunk = blk[:min(left, len(blk))]
                s.sendall(chunk)
                tx.update(chunk)
                left -= len(chunk)
            s.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=send)
        t.start()
        rx, n = hashlib.sha256(), 0
        while d := s.recv(1 << 16):
            rx.update(d)
            n += len(d)
        t.join()
    return {"local": local, "rx": n, "rx_sha": rx.hexdigest(), "tx_sha": tx.hexdigest()}
