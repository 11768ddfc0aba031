"""The capture clock: every frame and robot-state stamp in an observation is on `time.monotonic`, so
ages compare across cameras, the robot server and the control loop."""

from __future__ import annotations

import time


def wall_to_monotonic(wall_s: float) -> float:
    """A time.time() instant on the time.monotonic clock (the offset between the two is read
    now)."""
    return time.monotonic() - (time.time() - wall_s)
