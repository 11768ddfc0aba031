"""The one interface for every source of operator input: a SpaceMouse, a keyboard, a replayed
stream, or the scripted operator that stands in for a person in tests and the demo.

Operator controls travel in `DeviceState.buttons`, always by these names (`CONTROLS`): "pause",
"abort", "mark_success", "mark_failure", "confirm_reset". A control is listed when it was pressed
since the last read OR is still held, so a press shorter than the read period is never lost and a
held "mark_success" shows on every read while held (labelling relies on that). Consumers that want
one event per press (the intervention wrapper) act on rising edges: a name present now and absent in
the previous read.

A device says which controls it can produce in a `controls` attribute (a frozenset of `CONTROLS`
names), so a loop that waits for a control (the reset confirmation) is refused at start, not left
waiting forever; `device_controls` reads it (None: the device does not say)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

CONTROLS = ("pause", "abort", "mark_success", "mark_failure", "confirm_reset")
# what a hardware device's button can be mapped to (the SpaceMouse's, the gamepad's)
BUTTON_ROLES = ("close", "open", "takeover", *CONTROLS)


def mapped_controls(buttons) -> frozenset[str]:
    """The operator controls some (button, role) pair of a button map is mapped to."""
    return frozenset(role for _, role in buttons if role in CONTROLS)


@dataclass(frozen=True)
class DeviceState:
    action: np.ndarray  # float32 (7,): xyz, rpy in the robot's base frame, gripper; each in [-1, 1]
    # operator controls (`CONTROLS`) pressed since the last read or still held
    buttons: tuple[str, ...] = ()
    # the operator is in control: this action is executed and recorded as intervened
    active: bool = False
    # device-specific detail for logs (not read by the wrappers)
    extra: dict = field(default_factory=dict)


@runtime_checkable
class InterventionDevice(Protocol):
    def read(self) -> DeviceState:
        """The device's current state. Never blocks."""
        ...


def check_controls(names) -> tuple[str, ...]:
    """`names` as a tuple, or ValueError naming any that is not an operator control (a typo in a
    rig's button mapping must not silently do nothing)."""
    names = tuple(names)
    unknown = sorted(set(names) - set(CONTROLS))
    if unknown:
        raise ValueError(f"unknown operator controls {unknown}; the controls are {list(CONTROLS)}")
    return names


def device_controls(device) -> frozenset[str] | None:
    """The operator controls `device` can produce, or None when it does not declare them."""
    controls = getattr(device, "controls", None)
    return None if controls is None else frozenset(controls)


def require_controls(
    controls: frozenset[str] | None, needed: dict[str, str], device: str, hint: str = ""
) -> None:
    """ValueError naming each control in `needed` (control -> what waits for it) missing from
    `controls` (what the device `device` can produce); nothing when `controls` is None (unknown)."""
    missing = sorted(set(needed) - controls) if controls is not None else []
    if missing:
        waits = "; ".join(f"{name} ({needed[name]})" for name in missing)
        raise ValueError(
            f"the operator device {device} cannot produce {waits}; it produces "
            f"{sorted(controls) or 'no operator controls'}{'. ' + hint if hint else ''}"
        )


IDLE = DeviceState(action=np.zeros(7, np.float32))
