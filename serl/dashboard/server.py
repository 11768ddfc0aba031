"""The dashboard's HTTP server (the standard library's threading server, one thread per browser
connection, every thread a daemon; it runs in the dashboard's own process, `serl.dashboard.child`):

    GET  /?token=T              the page
    GET  /state?token=T         the newest state as JSON
    GET  /events?token=T        the same as Server-Sent Events, one per new state (a slow reader
                                skips states), a comment every second when nothing changes; each
                                event carries, under "images", a JPEG data URL for every camera
                                whose frame changed since this stream's last event (no request per
                                frame: less of the browser's CPU, docs/design-notes.md)
    GET  /frame/<camera>?token=T  the camera's newest frame as the policy sees it (JPEG)
    POST /control               {"control": NAME}, with the X-Serl-Token header (`access`)

Every request is checked by `serl.dashboard.access`; a refusal answers its status with a JSON
`{"error": reason}` and changes nothing, and is logged at a bounded rate.
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import msgpack

from serl.dashboard.access import (
    MAX_CONTROL_BYTES,
    Refused,
    allowed_hosts,
    check_control,
    check_host,
    check_token,
)
from serl.dashboard.board import Board
from serl.dashboard.config import DashboardConfig
from serl.dashboard.controls import PageControls
from serl.transport.frames import FrameCodec
from serl.transport.rate_log import RateLimitedLog
from serl.transport.wire import JPEG_EXT

log = logging.getLogger("serl.dashboard")
PAGE = resources.files("serl.dashboard").joinpath("page.html").read_bytes()
# frames of a lossless codec are JPEG-encoded here, on the server's thread
DISPLAY_CODEC = FrameCodec(85)
# at most this many states a second to each page: a rig's control rate (an unpaced simulation steps
# faster, and the page need not follow every step; each state shown costs the browser's CPU)
MAX_EVENTS_HZ = 10.0


def display_jpeg(frame) -> bytes | None:
    """The frame as JPEG bytes: the actor's own where it made them, else encoded here (None for a
    camera whose frames JPEG cannot hold: not 8-bit RGB)."""
    if isinstance(frame.jpeg, bytes):
        return frame.jpeg
    try:
        encoded = DISPLAY_CODEC.encode(frame.jpeg)
    except ValueError:  # a dtype the wire cannot carry either
        return None
    jpeg = isinstance(encoded, msgpack.ExtType) and encoded.code == JPEG_EXT
    return encoded.data if jpeg else None


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, cfg: DashboardConfig, board: Board, controls: PageControls | None,
                 token: str):
        self.cfg, self.board, self.page_controls, self.token = cfg, board, controls, token
        self.closing = False
        self.refusals = RateLimitedLog(log, 10.0)
        try:
            super().__init__((cfg.host, cfg.port), Handler)
        except OSError as err:
            if err.errno != errno.EADDRINUSE or cfg.port == 0:
                raise
            super().__init__((cfg.host, 0), Handler)
            log.warning("dashboard port %d is taken (another actor?): serving on port %d instead",
                        cfg.port, self.server_address[1])
        self.port = self.server_address[1]
        self.hosts = allowed_hosts(cfg.host, self.port)
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="serl-dashboard", daemon=True)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.cfg.host in ("0.0.0.0", "", "*") else self.cfg.host
        return f"http://{host}:{self.port}/?token={self.token}"

    @property
    def controls_enabled(self) -> bool:
        return self.page_controls is not None and self.cfg.controls_enabled

    def start(self) -> DashboardServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.closing = True
        self.board.wake_all()
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5.0)


class Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    protocol_version = "HTTP/1.1"
    # a client that stalls mid-request frees its thread after this (the event stream writes)
    timeout = 10.0

    def log_message(self, format, *args) -> None:  # noqa: A002 -- the base class's name
        pass  # requests carry the token in their URL: never logged

    # ---------- GET ----------
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        try:
            check_host(self.headers, self.server.hosts)
            check_token((parse_qs(url.query).get("token") or [None])[0], self.server.token)
            if url.path == "/":
                return self._send(200, PAGE, "text/html; charset=utf-8")
            if url.path == "/state":
                return self._json(200, self._state(self.server.board.snapshot()[1]))
            if url.path == "/events":
                return self._events()
            if url.path.startswith("/frame/"):
                return self._frame(url.path[len("/frame/"):])
            raise Refused(404, f"no such page {url.path[:80]!r}")
        except Refused as refused:
            self._refuse(refused)

    def _state(self, state: dict) -> dict:
        return {**state, "controls_enabled": self.server.controls_enabled}

    def _frame(self, key: str) -> None:
        frame = self.server.board.frame(key)
        if frame is None:
            raise Refused(404, f"no frame from camera {key[:40]!r} yet")
        data = display_jpeg(frame)
        if data is None:
            raise Refused(415, f"camera {key[:40]!r} frames are not RGB images")
        self._send(200, data, "image/jpeg")

    def _event(self, state: dict, frames: dict, sent: dict[str, int]) -> bytes:
        """One event: the state, and a data URL for each of its `frames` this stream has not sent
        yet (`sent`: camera -> seq sent, updated here; a frame JPEG cannot hold is skipped)."""
        images = {}
        for key, frame in frames.items():
            if sent.get(key) == frame.seq:
                continue
            sent[key] = frame.seq
            data = display_jpeg(frame)
            if data is not None:
                images[key] = {"seq": frame.seq, "captured": frame.captured,
                               "src": "data:image/jpeg;base64," + base64.b64encode(data).decode()}
        return b"data: " + json.dumps({**self._state(state), "images": images}).encode() + b"\n\n"

    def _events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        board, version, sent = self.server.board, -1, {}
        try:
            self.wfile.write(b"retry: 1000\n\n")
            while not self.server.closing:
                got = board.wait_newer(version, timeout=1.0)
                if got is None:
                    self.wfile.write(b": idle\n\n")
                else:
                    version, state, frames = got
                    self.wfile.write(self._event(state, frames, sent))
                self.wfile.flush()
                if got is not None:
                    time.sleep(1.0 / MAX_EVENTS_HZ)
        except OSError:  # the browser went away
            return

    # ---------- POST ----------
    def do_POST(self) -> None:
        try:
            if urlsplit(self.path).path != "/control":
                raise Refused(404, f"no such endpoint {self.path[:80]!r}")
            length = self._length()
            body = self.rfile.read(length) if length else b""
            name = check_control(self.headers, body, self.server.token, self.server.hosts,
                                 self.server.controls_enabled)
            self.server.page_controls.press(name)
            log.info("dashboard: the operator pressed %s", name)
            self._json(200, {"ok": True, "control": name})
        except Refused as refused:
            self._refuse(refused)

    def _length(self) -> int:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise Refused(400, "Content-Length is not a number") from None
        if not 0 <= length <= MAX_CONTROL_BYTES:
            # unread: the connection cannot be reused
            self.close_connection = True
            raise Refused(413, f"a control body is at most {MAX_CONTROL_BYTES} bytes")
        return length

    # ---------- answers ----------
    def _refuse(self, refused: Refused) -> None:
        # the path only: the query holds the token
        self.server.refusals.log(logging.WARNING, ("refused", refused.status, self.command),
                                 "dashboard: refused %s %s from %s: %s", self.command,
                                 urlsplit(self.path).path[:80], self.client_address[0],
                                 refused.reason)
        self.close_connection = True  # an unread body must not be taken for the next request
        self._json(refused.status, {"error": refused.reason})

    def _json(self, status: int, value: dict) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.end_headers()
        self.wfile.write(body)
