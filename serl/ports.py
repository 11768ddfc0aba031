"""Loopback ports free right now, for tests, launched rigs and `serl train`'s two processes (the
process that binds them does so a moment later, so another binder could in principle take one
first)."""

from __future__ import annotations

import ipaddress
import socket


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct TCP ports on `host` that nothing is bound to now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port(host: str = "127.0.0.1") -> int:
    """One TCP port on `host` that nothing is bound to now."""
    return free_ports(1, host)[0]


def is_loopback(host: str) -> bool:
    """Whether binding or connecting to `host` stays on this machine. "*", "0.0.0.0", an interface
    name or any other address that does not parse as loopback counts as reaching the network."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
