"""Recorded device streams: `DeviceRecorder` wraps any device and keeps every state it reads;
`Replay` plays a recording back, one recorded state per read, so an episode driven by a person can
be re-run exactly (for a bug report, a test, or a demo without the person).

File format: one `.npz` (numpy only, never pickle), written atomically: `action` float32 (N, 7),
`active` bool (N,), `buttons` unicode (N,) (control names joined by ","), `t` float64 (N,) seconds
since the first read, `format` = "serl-device-stream-1".
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from serl.devices.base import IDLE, DeviceState, InterventionDevice, check_controls, device_controls
from serl.durable import write_npz

FORMAT = "serl-device-stream-1"


def save_stream(path: str | Path, states: list[DeviceState], times: list[float]) -> Path:
    """Write a stream atomically (a crash leaves the old file or none, never half of one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "action": np.array([s.action for s in states], np.float32).reshape(len(states), 7),
        "active": np.array([s.active for s in states], bool),
        "buttons": np.array([",".join(s.buttons) for s in states], dtype=str),
        "t": np.array([t - times[0] for t in times] if times else [], np.float64),
        "format": np.array(FORMAT),
    }
    return write_npz(path, arrays)


def load_stream(path: str | Path) -> list[DeviceState]:
    """The recorded states, in order; ValueError naming the file and the problem if it is not a
    valid stream."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    # missing, truncated, not a zip, an object array: all reported the same way
    except Exception as err:
        raise ValueError(
            f"{path.name}: not a readable device stream ({type(err).__name__}: {err})"
        ) from None
    if str(arrays.get("format", "")) != FORMAT:
        raise ValueError(
            f"{path.name}: not a device stream (format {str(arrays.get('format', 'missing'))!r})"
        )
    action, active, buttons = arrays["action"], arrays["active"], arrays["buttons"]
    n = len(action)
    if action.shape != (n, 7) or active.shape != (n,) or buttons.shape != (n,):
        raise ValueError(
            f"{path.name}: inconsistent shapes {action.shape}, {active.shape}, {buttons.shape}"
        )
    if not np.all(np.isfinite(action)) or np.any(np.abs(action) > 1.0):
        raise ValueError(f"{path.name}: actions must be finite and within [-1, 1]")
    try:
        controls = [check_controls(b.split(",")) if b else () for b in buttons.tolist()]
    except ValueError as err:
        raise ValueError(f"{path.name}: {err}") from None
    return [
        DeviceState(action=a.astype(np.float32), buttons=c, active=bool(on))
        for a, c, on in zip(action, controls, active, strict=True)
    ]


class DeviceRecorder:
    """Implements `InterventionDevice`: passes `device`'s states through and records them; `save()`
    writes the stream, `close()` saves and closes the device."""

    def __init__(self, device: InterventionDevice, path: str | Path):
        self.device, self.path = device, Path(path)
        # what the recorded device can produce (None: it does not say)
        self.controls = device_controls(device)
        self.states: list[DeviceState] = []
        self.times: list[float] = []

    def read(self) -> DeviceState:
        state = self.device.read()
        self.states.append(state)
        self.times.append(time.monotonic())
        return state

    def save(self) -> Path:
        return save_stream(self.path, self.states, self.times)

    def close(self) -> None:
        self.save()
        if callable(close := getattr(self.device, "close", None)):
            close()


class Replay:
    """Implements `InterventionDevice`: the recorded states, one per read, then idle (`finished` is
    True)."""

    def __init__(self, path: str | Path):
        self.states = load_stream(path)
        self.position = 0
        # those the recording has
        self.controls = frozenset(c for state in self.states for c in state.buttons)

    @property
    def finished(self) -> bool:
        return self.position >= len(self.states)

    def read(self) -> DeviceState:
        if self.finished:
            return IDLE
        self.position += 1
        return self.states[self.position - 1]
