"""The dashboard's server process (`python -m serl.dashboard.child`, started by
`serl.dashboard.process.ServerProcess`; the contract is there). It mirrors the actor's board from
the feed socket, serves it, forwards the page's presses, runs at a lower priority than the actor
(a busy browser takes the CPU from it, not from the robot) and ends when its stdin closes."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading

import msgpack
import zmq

from serl.dashboard.access import Refused
from serl.dashboard.board import Board, Frame
from serl.dashboard.config import DashboardConfig
from serl.dashboard.process import unpack_frame
from serl.devices.base import check_controls

log = logging.getLogger("serl.dashboard")
NICENESS = 10


class PressForwarder:
    """The page's buttons, as the server sees them: each press (checked) goes to the actor."""

    def __init__(self, socket: zmq.Socket):
        self._socket, self._lock = socket, threading.Lock()

    def press(self, name: str) -> None:
        check_controls([name])
        with self._lock:  # one socket, many server threads
            try:
                self._socket.send(name.encode(), zmq.NOBLOCK)
            except zmq.Again:
                raise Refused(503, f"the actor is not taking presses: {name} not sent") from None


def mirror(board: Board, message: bytes) -> None:
    """Put one feed message ([state, {camera: packed frame}]) on `board`."""
    state, frames = msgpack.unpackb(message, raw=False)
    board.mirror(state, {key: Frame(*unpack_frame(packed)) for key, packed in frames.items()})


def serve(settings: dict, stdin_closed: threading.Event) -> None:
    from serl.dashboard.server import DashboardServer

    context = zmq.Context.instance()
    feed = context.socket(zmq.PULL)
    feed.connect(settings["feed"])
    presses = context.socket(zmq.PUSH)
    presses.setsockopt(zmq.LINGER, 1000)
    presses.connect(settings["presses"])
    board = Board()
    controls = PressForwarder(presses) if settings["controls"] else None
    try:
        server = DashboardServer(DashboardConfig(**settings["config"]), board, controls,
                                 settings["token"]).start()
    except OSError as err:
        print(json.dumps({"error": str(err)}), flush=True)
        raise SystemExit(1) from None
    print(json.dumps({"url": server.url, "port": server.port}), flush=True)
    try:
        while not stdin_closed.is_set():
            if feed.poll(200):
                try:
                    mirror(board, feed.recv())
                except Exception as err:  # noqa: BLE001 -- one bad message, not the page
                    log.warning("dashboard: dropped a malformed feed message: %s", err)
    finally:
        server.close()
        feed.close()
        presses.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        os.nice(NICENESS)
    except OSError:
        pass
    settings = json.loads(sys.stdin.readline())
    closed = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF: the actor closed it or died
        closed.set()

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    serve(settings, closed)


if __name__ == "__main__":
    main()
