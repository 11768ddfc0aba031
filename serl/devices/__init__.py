"""Operator input devices behind one interface (`InterventionDevice.read() -> DeviceState`), and
`make_device`, which builds the one an experiment config chooses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from serl.devices.base import (
    CONTROLS,
    IDLE,
    DeviceState,
    InterventionDevice,
    device_controls,
    require_controls,
)
from serl.devices.gamepad import Gamepad, GamepadConfig
from serl.devices.keyboard import Keyboard, KeyboardConfig
from serl.devices.replay import DeviceRecorder, Replay
from serl.devices.scripted import ScriptedOperator, ScriptedOperatorConfig
from serl.devices.spacemouse import SpaceMouse, SpaceMouseConfig
from serl.envs.scene import scene_of

__all__ = [
    "CONTROLS",
    "IDLE",
    "DeviceConfig",
    "DeviceState",
    "Gamepad",
    "GamepadConfig",
    "InterventionDevice",
    "Keyboard",
    "KeyboardConfig",
    "Replay",
    "ScriptedOperator",
    "ScriptedOperatorConfig",
    "SpaceMouse",
    "WithControls",
    "SpaceMouseConfig",
    "check_device_controls",
    "device_controls",
    "make_device",
]

DeviceKind = Literal["scripted", "spacemouse", "keyboard", "replay", "gamepad"]


@dataclass(frozen=True)
class DeviceConfig:
    # who drives: the simulated person (sim only), SpaceMouse, keyboard, a recording, a gamepad
    kind: DeviceKind = "scripted"
    # this rig's SpaceMouse mapping
    spacemouse: SpaceMouseConfig = field(default_factory=SpaceMouseConfig)
    # this rig's gamepad (Xbox or PlayStation layout): axis map, dead zone, scaling, buttons
    gamepad: GamepadConfig = field(default_factory=GamepadConfig)
    keyboard: KeyboardConfig = field(default_factory=KeyboardConfig)  # key bindings and speeds
    # with a SpaceMouse (or a gamepad): operator controls from the terminal's keyboard too
    keyboard_controls: bool = False
    replay_path: str = ""  # the recorded device stream that kind "replay" plays back
    record_path: str = ""  # if set, every device state read is recorded to this file (replayable)

    @property
    def controls(self) -> frozenset[str] | None:
        """The operator controls the device described can produce, known before it is opened (None
        for a replay: whatever its recording holds)."""
        if self.kind == "spacemouse":
            return self.spacemouse.controls | (
                self.keyboard.controls if self.keyboard_controls else frozenset()
            )
        if self.kind == "gamepad":
            return self.gamepad.controls | (
                self.keyboard.controls if self.keyboard_controls else frozenset()
            )
        if self.kind == "keyboard":
            return self.keyboard.controls
        return None if self.kind == "replay" else frozenset()


class WithControls:
    """A motion device plus a second device for operator controls (a two-button SpaceMouse and the
    keyboard): motion from the first, or from the second while only it is active; controls from
    both."""

    def __init__(self, motion: InterventionDevice, controls: InterventionDevice):
        self.motion, self.control_device = motion, controls
        known = device_controls(motion), device_controls(controls)
        # what the two can produce together
        self.controls = None if None in known else known[0] | known[1]

    def read(self) -> DeviceState:
        first, second = self.motion.read(), self.control_device.read()
        acting = second if second.active and not first.active else first
        buttons = tuple(c for c in CONTROLS if c in first.buttons or c in second.buttons)
        return DeviceState(
            np.asarray(acting.action, np.float32), buttons, acting.active, dict(first.extra)
        )

    @property
    def takeover_scale(self) -> float | None:
        """The motion device's take-over schedule (the scripted operator's), if it has one."""
        return getattr(self.motion, "takeover_scale", None)

    @takeover_scale.setter
    def takeover_scale(self, scale: float) -> None:
        self.motion.takeover_scale = scale

    def close(self) -> None:
        for device in (self.motion, self.control_device):
            if callable(close := getattr(device, "close", None)):
                close()


def check_device_controls(cfg: DeviceConfig, needed: dict[str, str]) -> None:
    """Before any device is opened: ValueError naming each control in `needed` (control -> what
    waits for it) that the device `cfg` describes cannot produce, and how to give it one."""
    hints = {
        "spacemouse": "Set device.keyboard_controls (the terminal's keys beside the SpaceMouse) "
        "or map a "
        "button to it in device.spacemouse.buttons",
        "keyboard": "Bind a key to it in device.keyboard.keys",
        "gamepad": "Map a button to it in device.gamepad.buttons (or set device.keyboard_controls)",
        "scripted": "The scripted operator only moves; use a spacemouse or keyboard device",
    }
    require_controls(cfg.controls, needed, f"{cfg.kind!r}", hints.get(cfg.kind, ""))


def make_device(
    cfg: DeviceConfig,
    env=None,
    scripted: ScriptedOperatorConfig = ScriptedOperatorConfig(),
    seed: int | None = None,
) -> InterventionDevice:
    """The device `cfg` describes. The scripted operator needs the env whose scene it reads (a
    `serl.envs.scene.Scene`)."""
    if cfg.kind == "scripted":
        try:
            scene = scene_of(env)
        except ValueError as err:
            raise ValueError(
                "device.kind 'scripted' drives simulated envs only; a real rig needs "
                f"'spacemouse' or 'keyboard' ({err})"
            ) from None
        device = ScriptedOperator(scene, scripted, seed=seed)
    elif cfg.kind == "spacemouse":
        device = SpaceMouse(cfg.spacemouse)
        if cfg.keyboard_controls:
            device = WithControls(device, Keyboard(cfg.keyboard))
    elif cfg.kind == "gamepad":
        device = Gamepad(cfg.gamepad)
        if cfg.keyboard_controls:
            device = WithControls(device, Keyboard(cfg.keyboard))
    elif cfg.kind == "keyboard":
        device = Keyboard(cfg.keyboard)
    elif cfg.kind == "replay":
        device = Replay(cfg.replay_path)
    else:
        raise ValueError(
            f"unknown device.kind {cfg.kind!r}; one of scripted, spacemouse, keyboard, replay, "
            "gamepad"
        )
    return DeviceRecorder(device, cfg.record_path) if cfg.record_path else device
