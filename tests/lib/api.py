"""The slirp4netns JSON API socket: one request, one reply."""

from __future__ import annotations

import json
import socket

# request templates: ADD % json.dumps(arguments), REMOVE % id, LIST % extra members
ADD = '{"execute": "add_hostfwd", "arguments": %s}'
REMOVE = b'{"execute": "remove_hostfwd", "arguments": {"id": %s}}'
LIST = b'{"execute": "list_hostfwd", %s}'


def api(path: str, request: str | bytes, shutdown: bool = True, timeout: float = 10) -> str:
    """One request, one reply, as `echo -n $json | nc -U sock` does it."""
    data = request.encode() if isinstance(request, str) else request
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(data)
        if shutdown:
            s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return reply.decode()


def api_call(path: str, request: dict) -> dict:
    """One request (a dict, sent as JSON), its reply parsed, as podman's and
    rootlesskit's port drivers ask."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(json.dumps(request).encode())
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    return json.loads(reply)
