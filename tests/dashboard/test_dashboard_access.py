"""The dashboard's server on a real socket: every request needs the run's token and a Host naming
this server; a control needs the page's own Origin, the token header and a well-formed body; a
refused request changes nothing; a view-only dashboard presses nothing; a reader that stops
reading never slows the writer (the actor's thread)."""

import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from serl.dashboard.access import Refused, allowed_hosts, check_control, run_token
from serl.dashboard.board import Board
from serl.dashboard.config import DashboardConfig
from serl.dashboard.opening import open_dashboard


@pytest.fixture
def dashboard(tmp_path):
    board = open_dashboard(DashboardConfig(port=0), tmp_path / "token")
    yield board
    board.close()


def request(url: str, data: bytes | None = None, headers: dict | None = None):
    """(status, parsed JSON or raw bytes) of one HTTP request."""
    req = urllib.request.Request(url, data=data, headers=headers or {},
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=5) as answer:
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def control(dashboard, body: bytes, **headers):
    base = dashboard.url.split("/?")[0]
    sent = {"Content-Type": "application/json", "X-Serl-Token": dashboard.server.token,
            "Origin": base, **headers}
    return request(f"{base}/control", body, {k: v for k, v in sent.items() if v is not None})


def pressed(dashboard, timeout: float = 5.0) -> tuple[str, ...]:
    """The buttons of the first read that has any: the server process forwards a press before it
    answers, and the press crosses to the actor's socket a moment later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        buttons = dashboard.controls.read().buttons
        if buttons:
            return buttons
        time.sleep(0.01)
    return ()


@pytest.mark.timeout(30)
def test_views_need_the_token(dashboard):
    base, token = dashboard.url.split("/?token=")
    assert request(dashboard.url)[0] == 200
    for path in ("/", "/state", "/events", "/frame/front"):
        status, body = request(f"{base}{path}")
        assert status == 401 and "token" in body["error"]
        status, body = request(f"{base}{path}?token=not-{token}")
        assert status == 401 and "wrong token" in body["error"]
    assert request(f"{base}/frame/front?token={token}")[0] == 404  # no frame yet
    assert request(f"{base}/nothing?token={token}")[0] == 404


@pytest.mark.timeout(30)
def test_a_well_formed_control_presses_the_button(dashboard):
    status, body = control(dashboard, b'{"control": "abort"}')
    assert (status, body) == (200, {"ok": True, "control": "abort"})
    assert pressed(dashboard) == ("abort",)
    assert dashboard.controls.read().buttons == ()  # one press, one read


@pytest.mark.timeout(30)
@pytest.mark.parametrize("body, headers, status, says", [
    (b'{"control": "abort"}', {"Origin": "http://evil.example"}, 403, "cross-origin"),
    (b'{"control": "abort"}', {"Origin": None}, 403, "cross-origin"),
    (b'{"control": "abort"}', {"X-Serl-Token": None}, 401, "no token"),
    (b'{"control": "abort"}', {"X-Serl-Token": "guess"}, 401, "wrong token"),
    (b'{"control": "abort"}', {"Content-Type": "text/plain"}, 415, "JSON body"),
    (b'{"control": "launch"}', {}, 400, "unknown control"),
    (b'{"control": "abort", "x": 1}', {}, 400, "expected"),
    (b'[1, 2]', {}, 400, "expected"),
    (b'{"control": ', {}, 400, "not JSON"),
    (b'x' * 5000, {}, 413, "at most"),
])
def test_a_bad_control_is_refused_and_presses_nothing(dashboard, body, headers, status, says):
    got, answer = control(dashboard, body, **headers)
    assert got == status and says in answer["error"]
    # presses arrive in order: had the refused one been forwarded, it would arrive before this
    assert control(dashboard, b'{"control": "pause"}')[0] == 200
    assert pressed(dashboard) == ("pause",) and dashboard.controls.presses == 1


@pytest.mark.timeout(30)
def test_a_rebound_host_name_is_refused(dashboard):
    """A page from another site whose name resolves to 127.0.0.1 (DNS rebinding) sends its own
    Host: refused, for views and controls alike."""
    base, token = dashboard.url.split("/?token=")
    port = base.rsplit(":", 1)[1]
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5) as raw:
        raw.sendall(f"GET /state?token={token} HTTP/1.1\r\nHost: evil.example:{port}\r\n"
                    "Connection: close\r\n\r\n".encode())
        answer = b"".join(iter(lambda: raw.recv(4096), b""))
    assert answer.startswith(b"HTTP/1.1 403") and b"is not this dashboard" in answer
    status, _ = control(dashboard, b'{"control": "abort"}', Host=f"evil.example:{port}",
                        Origin=f"http://evil.example:{port}")
    assert status == 403
    assert control(dashboard, b'{"control": "pause"}')[0] == 200
    assert pressed(dashboard) == ("pause",) and dashboard.controls.presses == 1


def test_a_network_dashboard_is_view_only_unless_allowed():
    assert DashboardConfig().controls_enabled
    assert not DashboardConfig(host="0.0.0.0").controls_enabled
    assert DashboardConfig(host="0.0.0.0", allow_remote_control=True).controls_enabled
    assert allowed_hosts("0.0.0.0", 80) is None
    assert allowed_hosts("127.0.0.1", 80) == {"127.0.0.1:80", "localhost:80", "[::1]:80"}
    with pytest.raises(Refused, match="view-only"):
        check_control({"Host": "10.0.0.2:80", "Origin": "http://10.0.0.2:80"},
                      b'{"control": "abort"}', "t" * 32, None, controls_enabled=False)


@pytest.mark.timeout(30)
def test_a_view_only_server_refuses_controls(tmp_path):
    dashboard = open_dashboard(DashboardConfig(host="0.0.0.0", port=0), tmp_path / "token")
    try:
        assert dashboard.controls is None
        base = dashboard.url.split("/?")[0]
        status, answer = request(f"{base}/control", b'{"control": "abort"}', {
            "Content-Type": "application/json", "X-Serl-Token": dashboard.server.token,
            "Origin": base})
        assert status == 403 and "view-only" in answer["error"]
        state = request(dashboard.url.replace("/?", "/state?"))[1]
        assert state["controls_enabled"] is False
    finally:
        dashboard.close()


def test_the_token_is_kept_for_the_run(tmp_path):
    path = tmp_path / "actor" / "actor-0.dashboard_token"
    token = run_token(path)
    assert len(token) >= 32 and run_token(path) == token
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.timeout(30)
def test_a_reader_that_stops_reading_never_slows_the_writer(dashboard):
    """A browser that opened the event stream and stopped reading (its socket buffers fill): the
    actor's thread still writes each state in well under a millisecond (the median; the worst
    within a scheduler slice or two on a loaded machine)."""
    base, token = dashboard.url.split("/?token=")
    port = int(base.rsplit(":", 1)[1])
    stalled = socket.create_connection(("127.0.0.1", port), timeout=5)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(f"GET /events?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
                    .encode())
    big = {"probs": [0.5] * 2000}  # ~14 kB a state: the stalled socket fills within a few
    times = []
    try:
        for k in range(300):
            start = time.perf_counter()
            dashboard.board.update({"front": (b"\xff\xd8" + bytes(20000), time.time())},
                                   reward=big, episode={"step": k})
            times.append(time.perf_counter() - start)
            time.sleep(0.002)
    finally:
        stalled.close()
    times.sort()
    assert times[150] < 0.001 and times[-1] < 0.05, f"median {1000 * times[150]:.3f} ms, worst "\
        f"{1000 * times[-1]:.2f} ms"
    assert dashboard.board.snapshot()[1]["episode"] == {"step": 299}


def test_the_board_keeps_the_newest_frame_per_camera():
    board = Board()
    board.update({"front": (b"a", 1.0)})
    board.update({"front": (b"b", 2.0), "wrist": (b"c", 3.0)}, episode={"step": 1})
    version, state = board.snapshot()
    assert version == 2 and state["frames"] == {"front": {"seq": 1, "captured": 2.0},
                                                "wrist": {"seq": 0, "captured": 3.0}}
    assert board.frame("front").jpeg == b"b" and board.wait_newer(version, 0.01) is None


def next_event(stream) -> dict:
    """The next state event of an open /events stream (comments and `retry` skipped)."""
    while True:
        line = stream.readline()
        assert line, "the event stream ended"
        if line.startswith(b"data: "):
            return json.loads(line[len(b"data: "):])


def serve_frame(dashboard, key: str, frame, captured: float) -> None:
    """Update the board with `frame` until the server's process shows it (an update sent before
    that process is listening is dropped, not queued)."""
    deadline = time.monotonic() + 10
    while key not in request(dashboard.url.replace("/?", "/state?"))[1].get("frames", {}):
        assert time.monotonic() < deadline, "the frame never reached the server"
        dashboard.board.update({key: (frame, captured)}, episode={"step": 0})
        time.sleep(0.05)


def event_at_step(stream, step: int) -> dict:
    """The first event of `stream` whose episode is at `step`."""
    event = next_event(stream)
    while event["episode"] != {"step": step}:
        event = next_event(stream)
    return event


@pytest.mark.timeout(30)
def test_the_event_stream_carries_each_frame_once_inline(dashboard):
    """A camera's frame rides in the first event after it changed, as a JPEG data URL of the
    actor's own bytes; events with no new frame carry no image."""
    import base64

    jpeg = b"\xff\xd8" + bytes(range(256)) + b"\xff\xd9"
    serve_frame(dashboard, "front", jpeg, 123.0)
    with urllib.request.urlopen(dashboard.url.replace("/?", "/events?"), timeout=5) as stream:
        image = next_event(stream)["images"]["front"]
        seq = image["seq"]
        assert image["captured"] == 123.0
        assert base64.b64decode(image["src"].split("base64,", 1)[1]) == jpeg
        dashboard.board.update(episode={"step": 1})
        assert event_at_step(stream, 1)["images"] == {}
        dashboard.board.update({"front": (jpeg[::-1], 124.0)}, episode={"step": 2})
        event = next_event(stream)
        while "front" not in event["images"]:
            assert event["images"] == {}
            event = next_event(stream)
        assert event["images"]["front"]["seq"] == seq + 1
    # another stream (a second page, or this one reconnected) starts with the current frame
    with urllib.request.urlopen(dashboard.url.replace("/?", "/events?"), timeout=5) as stream:
        image = next_event(stream)["images"]["front"]
        assert image["seq"] == seq + 1 and image["captured"] == 124.0


@pytest.mark.timeout(30)
def test_a_frame_jpeg_cannot_hold_is_left_out_and_the_stream_goes_on(dashboard):
    """A lossless camera whose frames are not 8-bit RGB (a depth image): no image, no broken
    stream; its frame endpoint says why."""
    import numpy as np

    serve_frame(dashboard, "depth", np.zeros((8, 8), np.uint16), 1.0)
    with urllib.request.urlopen(dashboard.url.replace("/?", "/events?"), timeout=5) as stream:
        assert next_event(stream)["images"] == {}
        dashboard.board.update(episode={"step": 1})
        assert event_at_step(stream, 1)["images"] == {}
    base, token = dashboard.url.split("/?token=")
    status, body = request(f"{base}/frame/depth?token={token}")
    assert status == 415 and "not RGB" in body["error"]
