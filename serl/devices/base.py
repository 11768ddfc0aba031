"""The one interface for every source of operator input: a SpaceMouse, a keyboard, a replayed stream, or the
scripted operator that stands in for a person in tests and the demo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class DeviceState:
    action: np.ndarray  # float32 (7,): xyz, rpy in the robot's base frame, gripper; each in [-1, 1]
    buttons: tuple[str, ...] = ()  # names of operator controls pressed since the last read (e.g. "pause")
    active: bool = False  # the operator is in control: this action is executed and recorded as intervened
    extra: dict = field(default_factory=dict)  # device-specific detail for logs (not read by the wrappers)


@runtime_checkable
class InterventionDevice(Protocol):
    def read(self) -> DeviceState:
        """The device's current state. Never blocks."""
        ...


IDLE = DeviceState(action=np.zeros(7, np.float32))
