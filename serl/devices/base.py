"""The one interface for every source of operator input: a SpaceMouse, a keyboard, a replayed stream, or the
scripted operator that stands in for a person in tests and the demo.

Operator controls travel in `DeviceState.buttons`, always by these names (`CONTROLS`): "pause", "abort",
"mark_success", "mark_failure", "confirm_reset". A control is listed when it was pressed since the last read OR is
still held, so a press shorter than the read period is never lost and a held "mark_success" shows on every read
while held (labelling relies on that). Consumers that want one event per press (the intervention wrapper) act on
rising edges: a name present now and absent in the previous read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

CONTROLS = ("pause", "abort", "mark_success", "mark_failure", "confirm_reset")


@dataclass(frozen=True)
class DeviceState:
    action: np.ndarray  # float32 (7,): xyz, rpy in the robot's base frame, gripper; each in [-1, 1]
    buttons: tuple[str, ...] = ()  # operator controls (`CONTROLS`) pressed since the last read or still held
    active: bool = False  # the operator is in control: this action is executed and recorded as intervened
    extra: dict = field(default_factory=dict)  # device-specific detail for logs (not read by the wrappers)


@runtime_checkable
class InterventionDevice(Protocol):
    def read(self) -> DeviceState:
        """The device's current state. Never blocks."""
        ...


def check_controls(names) -> tuple[str, ...]:
    """`names` as a tuple, or ValueError naming any that is not an operator control (a typo in a rig's button
    mapping must not silently do nothing)."""
    names = tuple(names)
    unknown = sorted(set(names) - set(CONTROLS))
    if unknown:
        raise ValueError(f"unknown operator controls {unknown}; the controls are {list(CONTROLS)}")
    return names


IDLE = DeviceState(action=np.zeros(7, np.float32))
