"""`make_device`: the device an experiment config names, and the
SpaceMouse-plus-keyboard combination."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import serl  # noqa: F401
from serl.devices import (
    DeviceConfig,
    DeviceState,
    Keyboard,
    Replay,
    ScriptedOperator,
    WithControls,
    make_device,
)
from serl.devices.replay import DeviceRecorder, save_stream


class Keys:
    def __init__(self, *typed):
        self.typed = list(typed)

    def poll(self):
        out, self.typed = self.typed, []
        return out


class Puck:
    def __init__(self, active):
        self.active = active

    def read(self):
        return DeviceState(np.full(7, 0.5, np.float32), (), self.active, {"connected": True})


@pytest.mark.timeout(30)
def test_make_device_builds_what_the_config_names(tmp_path):
    env = gym.make("serl/PandaPickCube-v0", image_obs=False)
    assert isinstance(make_device(DeviceConfig(), env), ScriptedOperator)
    paused = DeviceState(np.zeros(7, np.float32), ("pause",), True)
    stream = save_stream(tmp_path / "s.npz", [paused], [0.0])
    replay = make_device(DeviceConfig(kind="replay", replay_path=str(stream)))
    assert isinstance(replay, Replay) and replay.read().buttons == ("pause",)
    recorded = make_device(DeviceConfig(kind="replay", replay_path=str(stream),
                                        record_path=str(tmp_path / "r.npz")))
    assert isinstance(recorded, DeviceRecorder)
    with pytest.raises(ValueError, match="simulated envs only"):
        make_device(DeviceConfig(kind="scripted"), env=None)


def test_keyboard_controls_beside_a_spacemouse():
    keyboard = Keyboard(source=Keys("p"))
    device = WithControls(Puck(active=True), keyboard)
    state = device.read()
    # motion from the puck
    assert state.active and state.buttons == ("pause",) and np.all(state.action == 0.5)
    keyboard.source.typed += ["w"]
    state = WithControls(Puck(active=False), keyboard).read()
    # the keyboard drives alone
    assert state.active and state.action[0] == 0.5 and state.action[1] == 0.0
