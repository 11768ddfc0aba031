"""The dashboard's server runs in its own process: the actor's interpreter holds none of its
threads, a lossless camera's raw frame crosses to it and is served as a JPEG, and the server ends
with the actor, whether the actor closes it or dies."""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import psutil
import pytest

from serl.dashboard.config import DashboardConfig
from serl.dashboard.opening import open_dashboard


def fetch(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.status, answer.read()


def frame_url(dashboard, key: str) -> str:
    base, token = dashboard.url.split("/?token=")
    return f"{base}/frame/{key}?token={token}"


@pytest.mark.timeout(30)
def test_the_server_runs_in_a_child_and_serves_a_raw_frame_as_jpeg(tmp_path):
    dashboard = open_dashboard(DashboardConfig(port=0), tmp_path / "token")
    try:
        assert not [t for t in threading.enumerate() if t.name == "serl-dashboard"]
        children = psutil.Process().children()
        assert any("serl.dashboard.child" in " ".join(c.cmdline()) for c in children)
        frame = np.zeros((24, 32, 3), np.uint8)
        frame[:, 16:] = 255
        deadline, status, body = time.monotonic() + 10, 0, b""
        while time.monotonic() < deadline:
            dashboard.board.update({"front": (frame, time.time())}, episode={"step": 1})
            try:
                status, body = fetch(frame_url(dashboard, "front"))
                break
            except urllib.error.HTTPError:  # not arrived yet
                time.sleep(0.05)
        assert status == 200 and body[:2] == b"\xff\xd8"
    finally:
        dashboard.close()
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


OPENER = """
import sys, time
from pathlib import Path
from serl.dashboard.config import DashboardConfig
from serl.dashboard.opening import open_dashboard
open_dashboard(DashboardConfig(port=0), Path(sys.argv[1]))
time.sleep(60)
"""


@pytest.mark.timeout(60)
def test_the_server_ends_when_the_actor_is_killed(tmp_path):
    actor = subprocess.Popen([sys.executable, "-c", OPENER, str(tmp_path / "token")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert "operator dashboard" in actor.stdout.readline()
        (child,) = psutil.Process(actor.pid).children()
    finally:
        os.kill(actor.pid, signal.SIGKILL)
        actor.wait(timeout=10)
    child.wait(timeout=10)  # its stdin closed with the actor


@pytest.mark.timeout(30)
def test_an_address_the_server_cannot_bind_is_one_clear_error(tmp_path):
    with pytest.raises(OSError, match="dashboard could not serve: .*assign"):
        open_dashboard(DashboardConfig(host="192.0.2.1", port=0), tmp_path / "token")
    assert not [c for c in psutil.Process().children() if "serl.dashboard.child" in
                " ".join(c.cmdline()) and c.status() != psutil.STATUS_ZOMBIE]


def test_a_press_the_actor_cannot_take_is_refused_not_lost_silently():
    import zmq

    from serl.dashboard.access import Refused
    from serl.dashboard.child import PressForwarder

    socket = zmq.Context.instance().socket(zmq.PUSH)  # no actor connected: nowhere to go
    socket.setsockopt(zmq.LINGER, 0)
    try:
        with pytest.raises(Refused, match="not taking presses: abort") as refused:
            PressForwarder(socket).press("abort")
        assert refused.value.status == 503
        with pytest.raises(ValueError):
            PressForwarder(socket).press("launch")
    finally:
        socket.close()
