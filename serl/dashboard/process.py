"""The dashboard's server runs in a child process (`serl.dashboard.child`), so the browser's
requests never take the actor's interpreter lock; this is the actor's end of it.

    actor                                    child (`python -m serl.dashboard.child`)
    RemoteBoard.update -> PUSH  ipc feed  -> PULL -> Board.mirror -> HTTP server -> browser
    RemoteControls.read <- PULL ipc presses <- PUSH <- PressForwarder.press <- POST /control

Both sockets live in a private directory (mode 0700), so only the actor's user can reach them; the
actor's sends never block (a full queue drops the state: the next one carries the whole state
again). The child reads its settings and the token from stdin (never argv: `ps` shows argv), writes
one JSON line with its URL (or its error) on stdout, and exits when stdin closes: when the actor
closes it or dies.
"""

from __future__ import annotations

import json
import logging
import select
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import msgpack
import numpy as np
import zmq

from serl.dashboard.board import Board
from serl.dashboard.config import DashboardConfig
from serl.dashboard.controls import PageControls

log = logging.getLogger("serl.dashboard")
START_TIMEOUT_S = 30.0  # the child imports the server and binds its port (about 1 s here)
FEED_HWM = 4  # states queued for the child at most; newer ones are dropped while it is full


def pack_frame(frame) -> list:
    """[seq, captured, JPEG bytes] or, for a lossless codec's array, [seq, captured, its raw
    buffer, dtype, shape]."""
    if isinstance(frame.jpeg, bytes):
        return [frame.seq, frame.captured, frame.jpeg]
    data = np.ascontiguousarray(frame.jpeg)  # msgpack packs its buffer as is: no extra copy
    return [frame.seq, frame.captured, data.data, data.dtype.str, list(data.shape)]


def unpack_frame(packed: list) -> tuple[int, bytes | np.ndarray, float]:
    """(seq, JPEG bytes or the raw array, captured): a `Frame`'s fields."""
    seq, captured, data = packed[:3]
    if len(packed) == 5:
        data = np.frombuffer(data, dtype=np.dtype(packed[3])).reshape(packed[4])
    return int(seq), data, float(captured)


class RemoteBoard(Board):
    """The actor's `Board`: kept here as before (the feed and the tests read it) and sent to the
    child after each update, whole state and the frames this update replaced, without waiting."""

    def __init__(self, socket: zmq.Socket):
        super().__init__()
        self._socket = socket
        self.dropped = 0  # states the child's full queue (or its absence) did not take

    def update(self, frames=None, **sections) -> None:
        super().update(frames, **sections)
        state, all_frames = self._state, self._frames
        sent = {key: pack_frame(all_frames[key]) for key in frames or ()}
        try:
            self._socket.send(msgpack.packb([state, sent], use_bin_type=True), zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1


class RemoteControls(PageControls):
    """The page's buttons pressed in the child: each `read` first takes, without waiting, the
    presses the child forwarded since the last one."""

    def __init__(self, socket: zmq.Socket):
        super().__init__()
        self._socket = socket

    def read(self):
        while True:
            try:
                name = self._socket.recv(zmq.NOBLOCK).decode("utf-8", "replace")
            except zmq.Again:
                break
            try:
                self.press(name)
            except ValueError as err:  # the child checks names; this never happens
                log.warning("dashboard: ignored a forwarded press: %s", err)
        return super().read()


class ServerProcess:
    """The running child: its `url`, `port` and `token`; `close` ends it."""

    def __init__(self, cfg: DashboardConfig, token: str, controls: bool):
        self.token = token
        self._dir = Path(tempfile.mkdtemp(prefix="serl-dash-"))  # mode 0700
        self._context = zmq.Context.instance()
        self.feed = self._bound(zmq.PUSH, "feed", sndhwm=FEED_HWM)
        self.presses = self._bound(zmq.PULL, "presses")
        settings = {"config": asdict(cfg), "token": token, "controls": controls,
                    "feed": self._address("feed"), "presses": self._address("presses")}
        self._child = None
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "serl.dashboard.child"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True)
            self._child.stdin.write(json.dumps(settings) + "\n")
            self._child.stdin.flush()
            started = self._started()
        except BaseException:
            self.close()
            raise
        self.url, self.port = started["url"], started["port"]

    def _address(self, name: str) -> str:
        return f"ipc://{self._dir / name}"

    def _bound(self, kind: int, name: str, sndhwm: int | None = None) -> zmq.Socket:
        socket = self._context.socket(kind)
        socket.setsockopt(zmq.LINGER, 0)
        if sndhwm is not None:
            socket.setsockopt(zmq.SNDHWM, sndhwm)
        socket.bind(self._address(name))
        return socket

    def _started(self) -> dict:
        ready, _, _ = select.select([self._child.stdout], [], [], START_TIMEOUT_S)
        line = self._child.stdout.readline() if ready else ""
        if not line:
            raise OSError(f"the dashboard's server process did not start within "
                          f"{START_TIMEOUT_S:.0f} s (exit code {self._child.poll()}; its error is "
                          "above)")
        answer = json.loads(line)
        if "error" in answer:
            raise OSError(f"the dashboard could not serve: {answer['error']}")
        return answer

    def close(self) -> None:
        if self._child is not None:
            self._end_child()
        self.feed.close()
        self.presses.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _end_child(self) -> None:
        if self._child.stdin and not self._child.stdin.closed:
            try:
                self._child.stdin.close()  # the child's signal to end
            except OSError:
                pass
        try:
            self._child.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait(timeout=5.0)
        if self._child.stdout:
            self._child.stdout.close()
