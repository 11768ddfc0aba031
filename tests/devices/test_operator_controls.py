"""Every operator control a config waits for must be one its device can produce: devices declare
their controls, `build_env` refuses a config whose device lacks one (before opening anything), and
the real-rig templates pass."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import experiments
from serl.commands.runtime import build_env, operator_needs
from serl.devices import (
    DeviceConfig,
    DeviceState,
    Keyboard,
    KeyboardConfig,
    SpaceMouseConfig,
    check_device_controls,
)
from serl.devices.base import CONTROLS, device_controls
from serl.devices.replay import DeviceRecorder, Replay, save_stream
from serl.devices.scripted import ScriptedOperator

ALL = frozenset(CONTROLS)


class NoKeys:
    def poll(self):
        return []


def test_configs_say_which_controls_their_device_can_produce():
    # the default two-button map: close and open only
    assert SpaceMouseConfig().controls == frozenset()
    mapped = SpaceMouseConfig(buttons=(("LEFT", "pause"), ("RIGHT", "confirm_reset")))
    assert mapped.controls == {"pause", "confirm_reset"}
    assert KeyboardConfig().controls == ALL
    assert KeyboardConfig(keys=(("w", "+x"), ("p", "pause"))).controls == {"pause"}
    assert DeviceConfig(kind="spacemouse").controls == frozenset()
    assert DeviceConfig(kind="spacemouse", keyboard_controls=True).controls == ALL
    assert DeviceConfig(kind="keyboard").controls == ALL
    assert DeviceConfig(kind="scripted").controls == frozenset()
    assert DeviceConfig(kind="replay").controls is None  # known once the recording is read


def test_devices_declare_their_controls(tmp_path):
    import gymnasium as gym

    import serl  # noqa: F401

    keyboard = Keyboard(KeyboardConfig(keys=(("x", "abort"),)), source=NoKeys())
    assert device_controls(keyboard) == {"abort"}
    scripted = ScriptedOperator(gym.make("serl/PandaPickCube-v0", image_obs=False))
    assert device_controls(scripted) == frozenset()
    stream = save_stream(tmp_path / "s.npz",
                         [DeviceState(np.zeros(7, np.float32), ("pause", "mark_success")),
                          DeviceState(np.zeros(7, np.float32))], [0.0, 0.1])
    assert device_controls(Replay(stream)) == {"pause", "mark_success"}
    assert device_controls(DeviceRecorder(keyboard, tmp_path / "r.npz")) == {"abort"}
    assert device_controls(object()) is None  # a device that does not say is not second-guessed


def test_a_missing_control_is_named_with_what_waits_for_it_and_the_fix():
    with pytest.raises(ValueError, match=r"'spacemouse' cannot produce confirm_reset "
                                         r"\(every reset waits for it\).*"
                                         r"no operator controls.*device.keyboard_controls"):
        check_device_controls(DeviceConfig(kind="spacemouse"),
                              {"confirm_reset": "every reset waits for it"})
    check_device_controls(DeviceConfig(kind="spacemouse", keyboard_controls=True),
                          {"confirm_reset": "x"})
    # checked when it is opened
    check_device_controls(DeviceConfig(kind="replay"), {"confirm_reset": "x"})


@pytest.mark.timeout(60)
@pytest.mark.parametrize("task", ["franka_peg_insert", "franka_usb_pickup"])
def test_real_rig_templates_can_reach_every_control_they_wait_for(task):
    config = experiments.load(task)
    needs = operator_needs(config)
    # reset confirmation and the operator's reward
    assert {"confirm_reset", "mark_success"} <= needs.keys()
    check_device_controls(config.device, needs)
    # the rig has no success signal itself
    assert config.reward.human and config.reward.classifier_dir is None
    # record-labels / train-reward
    assert set(config.reward.classifier.image_keys) <= set(config.env.cameras)
    # Without the keyboard beside the SpaceMouse, building the env fails at once, naming the control
    # (it used to wait forever at the first reset); nothing is opened or connected before.
    bare = dataclasses.replace(config, device=DeviceConfig(kind="spacemouse"))
    with pytest.raises(ValueError, match="cannot produce confirm_reset.*mark_success"):
        build_env(bare)


def test_sim_tasks_with_the_scripted_operator_wait_for_no_control():
    for task in ("sim_pick_cube", "sim_pick_cube_ros"):
        config = experiments.load(task)
        check_device_controls(config.device, operator_needs(config))
