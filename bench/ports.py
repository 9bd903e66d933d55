"""A free loopback port for the servers the benchmark starts (chat, relay, nginx, mariadbd)."""
from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
