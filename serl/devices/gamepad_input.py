"""A gamepad's Linux input side: the event codes (linux/input-event-codes.h, a stable ABI), the two
button layouts, frames of events closed by SYN_REPORT, the pad's normalised sources, and finding and
opening a pad through `InputBackend`, the one seam to the kernel (python-evdev's `InputDevice`).
"""

from __future__ import annotations

import glob
import os.path
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

EV_SYN, EV_KEY, EV_ABS = 0x00, 0x01, 0x03
SYN_REPORT, SYN_DROPPED = 0, 3
ABS_X, ABS_Y, ABS_Z, ABS_RX, ABS_RY, ABS_RZ = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05
ABS_HAT0X, ABS_HAT0Y = 0x10, 0x11
BTN_SOUTH, BTN_EAST, BTN_NORTH, BTN_WEST = 0x130, 0x131, 0x133, 0x134
BTN_TL, BTN_TR, BTN_TL2, BTN_TR2 = 0x136, 0x137, 0x138, 0x139
BTN_SELECT, BTN_START, BTN_MODE, BTN_THUMBL, BTN_THUMBR = 0x13A, 0x13B, 0x13C, 0x13D, 0x13E
BTN_DPAD_UP, BTN_DPAD_DOWN, BTN_DPAD_LEFT, BTN_DPAD_RIGHT = 0x220, 0x221, 0x222, 0x223
SONY_VENDOR = 0x054C  # USB vendor id of Sony's pads (DualShock 4, DualSense)

# The kernel's positional codes (gamepad.rst), followed by hid-playstation and hid-sony
POSITIONAL = {
    BTN_SOUTH: "south", BTN_EAST: "east", BTN_NORTH: "north", BTN_WEST: "west",
    BTN_TL: "tl", BTN_TR: "tr", BTN_TL2: "tl2", BTN_TR2: "tr2",
    BTN_SELECT: "select", BTN_START: "start", BTN_MODE: "mode",
    BTN_THUMBL: "thumbl", BTN_THUMBR: "thumbr",
    BTN_DPAD_UP: "dpad_up", BTN_DPAD_DOWN: "dpad_down",
    BTN_DPAD_LEFT: "dpad_left", BTN_DPAD_RIGHT: "dpad_right",
}  # fmt: skip
LAYOUTS = {
    "playstation": POSITIONAL,
    # xpad, xone and xpadneo send X (west) as BTN_X == BTN_NORTH and Y (north) as BTN_Y == BTN_WEST
    "xbox": {**POSITIONAL, BTN_NORTH: "west", BTN_WEST: "north"},
}
SOURCES = ("left_x", "left_y", "right_x", "right_y", "triggers", "dpad_x", "dpad_y")
CENTRED = {ABS_X: "left_x", ABS_Y: "left_y", ABS_RX: "right_x", ABS_RY: "right_y",
           ABS_HAT0X: "dpad_x", ABS_HAT0Y: "dpad_y"}  # fmt: skip
DOWN_POSITIVE = ("left_y", "right_y", "dpad_y")  # the kernel's y grows downwards; ours upwards


@dataclass(frozen=True)
class PadReading:
    """A pad's state as the kernel last reported it: raw axis values (code -> value), keys down."""

    axes: dict[int, int]
    keys: frozenset[int]


def centred(value: int, lo: int, hi: int) -> float:
    """A stick or hat value in [-1, 1]: 0 at the rest value (lo + hi + 1) // 2, which is exact for
    xpad's -32768..32767 and for PlayStation sticks' 0..255 resting at 128; ±1 at either end."""
    centre = (lo + hi + 1) // 2
    span = hi - centre if value >= centre else centre - lo
    return float(np.clip((value - centre) / max(span, 1), -1.0, 1.0))


def pressure(value: int, lo: int, hi: int) -> float:
    """An analog trigger in [0, 1]: released at `lo`, fully pressed at `hi`."""
    return float(np.clip((value - lo) / max(hi - lo, 1), 0.0, 1.0))


def trigger(reading: PadReading, ranges: dict[int, tuple[int, int]], code: int, key: int) -> float:
    """A trigger's pressure in [0, 1] from its axis `code`, or 1 while its digital `key` is down."""
    analog = code in ranges and code in reading.axes
    return max(pressure(reading.axes[code], *ranges[code]) if analog else 0.0,
               float(key in reading.keys))


def decode_pad(
    reading: PadReading, ranges: dict[int, tuple[int, int]], layout: dict[int, str]
) -> tuple[dict[str, float], frozenset[str]]:
    """The pad's sources (`SOURCES`, right and up positive) and the names of the buttons down. A
    d-pad reported as a hat also presses the dpad_* buttons, one reported as buttons also moves
    dpad_x and dpad_y; a trigger counts as pressed (tl2, tr2) past half-way or by its digital
    key."""
    sources = dict.fromkeys(SOURCES, 0.0)
    for code, name in CENTRED.items():
        if code in ranges and code in reading.axes:
            value = centred(reading.axes[code], *ranges[code])
            sources[name] = -value if name in DOWN_POSITIVE else value
    keys = reading.keys
    dpad_x = sources["dpad_x"] + (BTN_DPAD_RIGHT in keys) - (BTN_DPAD_LEFT in keys)
    dpad_y = sources["dpad_y"] + (BTN_DPAD_UP in keys) - (BTN_DPAD_DOWN in keys)
    sources["dpad_x"] = float(np.clip(dpad_x, -1.0, 1.0))
    sources["dpad_y"] = float(np.clip(dpad_y, -1.0, 1.0))
    left = trigger(reading, ranges, ABS_Z, BTN_TL2)
    right = trigger(reading, ranges, ABS_RZ, BTN_TR2)
    sources["triggers"] = right - left
    derived = {
        "dpad_right": sources["dpad_x"] > 0.5, "dpad_left": sources["dpad_x"] < -0.5,
        "dpad_up": sources["dpad_y"] > 0.5, "dpad_down": sources["dpad_y"] < -0.5,
        "tl2": left > 0.5, "tr2": right > 0.5,
    }  # fmt: skip
    names = {layout[key] for key in keys if key in layout} | {n for n, d in derived.items() if d}
    return sources, frozenset(names)


class EventFrames:
    """Kernel events -> pad readings, one per SYN_REPORT (a frame is applied whole, never half).
    After SYN_DROPPED (the client's buffer overflowed) the events up to the next SYN_REPORT are
    discarded and the pad's state must be read from the device instead (`reset`)."""

    def __init__(self) -> None:
        self.reading = PadReading({}, frozenset())
        self._axes: dict[int, int] = {}
        self._keys: set[int] = set()
        self._dropped = False

    def reset(self, reading: PadReading) -> None:
        """Start from `reading` (the device's state), discarding any partial frame."""
        self.reading, self._dropped = reading, False
        self._axes, self._keys = dict(reading.axes), set(reading.keys)

    def feed(self, kind: int, code: int, value: int) -> str:
        """Take one event: "frame" when a SYN_REPORT completed a frame (`reading` is updated),
        "resync" when one ended a dropped stretch (call `reset`), else ""."""
        if kind == EV_SYN and code == SYN_DROPPED:
            self._dropped = True
        elif kind == EV_SYN and code == SYN_REPORT:
            if self._dropped:
                return "resync"
            self.reading = PadReading(dict(self._axes), frozenset(self._keys))
            return "frame"
        elif self._dropped:
            pass
        elif kind == EV_ABS:
            self._axes[code] = value
        elif kind == EV_KEY:  # 1 press, 2 auto-repeat, 0 release
            (self._keys.add if value else self._keys.discard)(code)
        return ""


class GamepadNotFound(RuntimeError):
    """No gamepad matching the configuration is connected; the message lists the devices found."""


# ---------- the seam to the kernel ----------
class InputBackend(Protocol):
    """What event devices exist and how one opens. `open` returns a python-evdev `InputDevice` (or
    an object read the same way: path, name, info, capabilities(absinfo=True), read_one, fileno,
    absinfo, active_keys, close)."""

    def list_devices(self) -> list[str]: ...

    def open(self, path: str) -> Any: ...


class EvdevBackend:
    """The machine's /dev/input/event* through python-evdev (the `robot` extra)."""

    def list_devices(self) -> list[str]:
        # every node, not evdev.list_devices()'s readable ones: a pad we may not open is reported
        return sorted(glob.glob("/dev/input/event*"))

    def open(self, path: str):
        try:
            import evdev
        except ImportError:
            raise RuntimeError("the gamepad needs python-evdev: pip install '.[robot]'") from None
        return evdev.InputDevice(path)


@dataclass
class OpenPad:
    """An opened gamepad: its evdev device, button layout and axis ranges (code -> (min, max))."""

    device: Any
    layout: dict[int, str]
    ranges: dict[int, tuple[int, int]]

    def snapshot(self) -> PadReading:
        """The pad's state as the kernel holds it now (on opening, and after SYN_DROPPED)."""
        axes = {code: self.device.absinfo(code).value for code in self.ranges}
        return PadReading(axes, frozenset(self.device.active_keys()))

    def describe(self) -> str:
        return f"{self.device.name} at {self.device.path}"


def _matches(wanted: str, path: str, name: str) -> bool:
    return not wanted or os.path.realpath(wanted) == os.path.realpath(path) or (
        wanted.lower() in name.lower()
    )


def pad_ranges(capabilities: dict) -> dict[int, tuple[int, int]] | None:
    """The axis ranges (code -> (min, max)) of a device with these evdev capabilities if it is a
    gamepad (gamepad.rst: BTN_GAMEPAD, i.e. BTN_SOUTH, and here a left stick too), else None. A
    DualSense's motion-sensor and touchpad nodes are not."""
    ranges = {code: (info.min, info.max) for code, info in capabilities.get(EV_ABS, [])}
    is_pad = BTN_SOUTH in capabilities.get(EV_KEY, []) and {ABS_X, ABS_Y} <= ranges.keys()
    return ranges if is_pad else None


def open_gamepad(wanted: str, layout: str, backend: InputBackend) -> OpenPad:
    """The first event device that is a gamepad matching `wanted` (see `GamepadConfig.device`),
    read with `layout` ("auto", "xbox" or "playstation"); GamepadNotFound lists the other devices
    and those this user may not open."""
    seen, denied = [], []
    for path in backend.list_devices():
        try:
            device = backend.open(path)
        except PermissionError:
            denied.append(path)
            continue
        except OSError:  # gone between listing and opening
            continue
        try:
            ranges = pad_ranges(device.capabilities(absinfo=True))
            if ranges is not None and _matches(wanted, path, device.name):
                auto = "playstation" if device.info.vendor == SONY_VENDOR else "xbox"
                return OpenPad(device, LAYOUTS[auto if layout == "auto" else layout], ranges)
            seen.append(f"{device.name} at {path}")
        except OSError:
            pass
        device.close()
    hint = (
        f"; this user may not open {len(denied)} event devices ({', '.join(denied[:4])}"
        f"{', ...' if len(denied) > 4 else ''}): add the udev rule in docs/real-robot.md"
        if denied
        else ""
    )
    raise GamepadNotFound(
        f"no gamepad{' matching ' + repr(wanted) if wanted else ''} connected. "
        f"Input devices: {'; '.join(seen) or 'none'}{hint}"
    )
