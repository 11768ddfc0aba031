"""Keyboard teleop: the pure key -> DeviceState mapping, and the terminal key source fed through a
real pty and a pipe (no display, no listener threads)."""

from __future__ import annotations

import os
import termios
import time

import numpy as np
import pytest

from serl.devices.keyboard import Keyboard, KeyboardConfig, TerminalKeys, keyboard_state

CFG = KeyboardConfig(translation=0.5, rotation=0.25, held_s=0.6)


class Keys:
    """A key source typed by the test."""

    def __init__(self):
        self.typed: list[str] = []

    def poll(self):
        out, self.typed = self.typed, []
        return out


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_mapping_of_roles_to_actions_and_controls():
    state = keyboard_state(frozenset({"+x", "-z", "+rz"}), frozenset(), False, CFG)
    np.testing.assert_array_equal(state.action, np.float32([0.5, 0, -0.5, 0, 0, 0.25, 0]))
    assert state.active and state.buttons == ()
    controls = frozenset({"pause", "mark_success"})
    state = keyboard_state(frozenset({"+y", "-y"}), controls, False, CFG)
    # opposite keys cancel; controls alone do not act
    assert not state.active and not np.any(state.action)
    assert state.buttons == ("pause", "mark_success")
    assert keyboard_state(frozenset(), frozenset({"close"}), False, CFG).action[6] == -1.0
    assert keyboard_state(frozenset(), frozenset(), True, CFG).active  # take-over while still
    with pytest.raises(ValueError, match="unknown roles"):
        KeyboardConfig(keys=(("q", "quit"),))


@pytest.mark.timeout(10)
def test_keys_are_held_until_timeout_and_space_stops():
    keys, clock = Keys(), Clock()
    kb = Keyboard(CFG, keys, clock)
    keys.typed += ["w", "r"]
    assert kb.read().action[:3].tolist() == [0.5, 0.0, 0.5]
    clock.now += 0.3
    keys.typed += ["w"]  # auto-repeat of w; r was released
    clock.now += 0.4
    assert kb.read().action[:3].tolist() == [0.5, 0.0, 0.0]
    keys.typed += [" "]
    state = kb.read()
    assert not state.active and not np.any(state.action)
    keys.typed += ["t"]
    assert kb.read().active and kb.read().active  # take-over toggled on, robot still
    keys.typed += ["t", "1"]
    state = kb.read()
    assert not state.active and state.buttons == ("mark_success",)
    clock.now += 1.0
    assert kb.read().buttons == ()
    keys.typed += ["c"]
    # one press, one gripper command
    assert kb.read().action[6] == -1.0 and kb.read().action[6] == 0.0


@pytest.mark.timeout(10)
def test_terminal_source_through_a_pty():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        kb = Keyboard(KeyboardConfig(), TerminalKeys(slave))
        assert not termios.tcgetattr(slave)[3] & termios.ICANON  # cbreak: keys arrive as typed
        assert termios.tcgetattr(slave)[3] & termios.ISIG  # Ctrl+C still interrupts
        assert kb.read().action.tolist() == [0.0] * 7  # nothing typed: returns at once
        os.write(master, b"wj")
        deadline, state = time.monotonic() + 2, kb.read()
        while not state.active and time.monotonic() < deadline:
            state = kb.read()
        np.testing.assert_array_equal(state.action, np.float32([0.5, 0, 0, 0, 0, 0.5, 0]))
        os.write(master, b"\n")
        deadline = time.monotonic() + 2
        while "confirm_reset" not in state.buttons and time.monotonic() < deadline:
            state = kb.read()
        assert "confirm_reset" in state.buttons
        kb.close()
        assert termios.tcgetattr(slave) == before  # the terminal is given back as it was
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.timeout(10)
def test_terminal_source_from_a_pipe_and_its_end():
    r, w = os.pipe()
    try:
        keys = TerminalKeys(r)
        os.write(w, b"px")
        assert keys.poll() == ["p", "x"]
        assert keys.poll() == []
        os.close(w)
        w = None
        assert keys.poll() == [] and keys.closed
    finally:
        os.close(r)
        if w is not None:
            os.close(w)
