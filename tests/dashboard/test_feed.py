"""The actor's side of the dashboard: the page's frames are the very JPEG bytes the wire codec made
for the policy's view (nothing encoded twice); the feed turns a step into the page's sections; a
failing feed switches itself off and never stops the actor."""

import logging

import numpy as np

from serl.actor.frames import FrameView
from serl.dashboard.board import Board
from serl.dashboard.feed import DashboardFeed
from serl.transport.frames import FrameCodec
from serl.transport.interfaces import LearnerStatus


def obs(k: int) -> dict:
    frame = np.full((32, 32, 3), 10 * k, np.uint8)
    return {"front": frame, "state": np.zeros(4, np.float32)}


def test_frames_are_the_wires_jpeg_bytes():
    view, board = FrameView(FrameCodec(90), ("front",)), Board()
    feed = DashboardFeed(board, view, ("x", "gripper"), "a")
    first = obs(1)
    view.observation(first)  # the policy's round trip encodes it
    feed.reset(0, False, first, {})
    assert board.frame("front").jpeg is view.cache.encoded(first["front"]).data
    lossless = FrameView(FrameCodec(None), ("front",))
    DashboardFeed(board, lossless, ("x",), "a").reset(0, False, obs(2), {})
    assert isinstance(board.frame("front").jpeg, np.ndarray)  # encoded by the server on request


def test_a_step_becomes_the_pages_sections():
    board = Board()
    status = LearnerStatus({"updates": 5}, evals=((10.0, 0.5),))
    feed = DashboardFeed(board, FrameView(FrameCodec(90), ("front",)), ("x", "gripper"), "a",
                         learner_status=lambda: (0.0, status), connected=lambda: True,
                         spool_fill=lambda: 0.25)
    feed.reset(3, False, obs(1), {})
    info = {"intervened": True, "intervene_action": np.array([0.5, -1.0]), "classifier_prob": 0.7,
            "classifier_threshold": 0.9, "marked": "success", "safety_clip_m": 0.004,
            "safety_hold": None}
    feed.step(1, obs(2), np.array([0.1, 1.0]), 1.0, info, ([0, 7], 2.04))
    # published when the loop hands the env its next action (or at the episode's end)
    assert board.snapshot()[1]["action"] is None and board.frame("front").seq == 0
    feed.flush()
    assert board.snapshot()[1]["action"]["policy"] == [0.1, 1.0]
    feed.episode_end({"episode_id": 3, "return": 1.0, "length": 1, "success": 1.0,
                      "aborted": 0.0})
    state = board.snapshot()[1]
    assert state["episode"]["who"] == "operator" and state["episode"]["return"] == 1.0
    assert state["episode"]["weights"] == [0, 7] and state["episode"]["weights_age_s"] == 2.0
    assert state["action"]["policy"] == [0.1, 1.0] and state["action"]["operator"] == [0.5, -1.0]
    assert state["action"]["safety_clip_m"] == 0.004
    assert state["reward"]["probs"] == [0.7] and state["reward"]["marks"] == [[1, "success"]]
    assert state["learner"]["status"] == {"updates": 5} and state["learner"]["connected"]
    assert state["spool"] == {"fill": 0.25} and state["frames"]["front"]["seq"] == 1
    assert state["last_episode"]["success"] == 1.0


def test_a_failing_feed_switches_off_and_the_actor_goes_on(caplog):
    def broken():
        raise RuntimeError("status unreadable")

    feed = DashboardFeed(Board(), FrameView(FrameCodec(90), ()), ("x",), "a",
                         learner_status=broken)
    with caplog.at_level(logging.ERROR, "serl.dashboard"):
        feed.reset(0, False, {}, {})  # raises nothing
        feed.step(1, {}, np.zeros(1), 0.0, {})
    assert feed.broken and "goes on without a dashboard" in caplog.text
    assert len(caplog.records) == 1  # logged once, then off
