"""Who may see the dashboard and press its buttons: pure checks on a request's parts.

Every request carries the run's token (in the query of the URL the actor prints; a control request
also in the `X-Serl-Token` header) and a `Host` that names this server (a page from another site,
resolved to 127.0.0.1 by DNS rebinding, sends its own host name). A control request must also come
from this server's own page: its `Origin` equals `http://<Host>`, and its body is the JSON object
`{"control": NAME}` with NAME one of the operator controls. Any other web page open in the
operator's browser can neither read the token nor send the custom header without a CORS preflight,
which this server never approves. A refusal is a `Refused` naming what is wrong; it changes
nothing.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from serl.devices.base import CONTROLS
from serl.ports import is_loopback

TOKEN_HEADER = "X-Serl-Token"
MAX_CONTROL_BYTES = 1024
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class Refused(Exception):
    """A request the dashboard does not serve: `status` (HTTP) and `reason` (said to the client)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def run_token(path: Path) -> str:
    """The run's dashboard token, kept in `path` (created, readable by its owner only, on first
    use): a restarted actor serves the same URL, so an open page reconnects."""
    path = Path(path)
    try:
        token = path.read_text().strip()
        if len(token) >= 16:
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """The `Host` header values that name a server bound to `host:port`; None when any may (a
    wildcard bind: the machine's names are not known here, the token still guards it)."""
    if host in ("0.0.0.0", "::", "*", ""):
        return None
    names = LOOPBACK_NAMES if is_loopback(host) else (host,)
    return frozenset(f"{name}:{port}" for name in names)


def check_host(headers: Mapping[str, str], hosts: frozenset[str] | None) -> str:
    """The request's Host, or Refused when it does not name this server."""
    host = headers.get("Host")
    if not host:
        raise Refused(400, "the request has no Host header")
    if hosts is not None and host not in hosts:
        raise Refused(403, f"Host {host[:80]!r} is not this dashboard ({sorted(hosts)})")
    return host


def check_token(given: str | None, token: str) -> None:
    """Refused unless `given` is the run's token (compared in constant time)."""
    if not given:
        raise Refused(401, "no token: open the URL the actor printed (it ends in ?token=...)")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise Refused(401, "wrong token: open the URL this run's actor printed")


def check_control(headers: Mapping[str, str], body: bytes, token: str,
                  hosts: frozenset[str] | None, controls_enabled: bool) -> str:
    """The operator control a POST /control asks for, after every check; Refused otherwise."""
    if not controls_enabled:
        raise Refused(403, "this dashboard is view-only (a non-loopback dashboard.host without "
                      "dashboard.allow_remote_control)")
    host = check_host(headers, hosts)
    origin = headers.get("Origin")
    if origin != f"http://{host}":
        raise Refused(403, f"cross-origin control refused (Origin {str(origin)[:80]!r}, this "
                      f"page is http://{host})")
    check_token(headers.get(TOKEN_HEADER), token)
    if (headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
        raise Refused(415, "a control is a JSON body (Content-Type: application/json)")
    if len(body) > MAX_CONTROL_BYTES:
        raise Refused(413, f"a control body is at most {MAX_CONTROL_BYTES} bytes")
    try:
        request = json.loads(body)
    except ValueError as err:
        raise Refused(400, f"the body is not JSON ({err})") from None
    if not isinstance(request, dict) or set(request) != {"control"}:
        raise Refused(400, 'expected {"control": NAME}')
    name = request["control"]
    if name not in CONTROLS:
        raise Refused(400, f"unknown control {str(name)[:40]!r}; one of {list(CONTROLS)}")
    return name
