"""`Gamepad`: an Xbox or PlayStation pad on Linux (evdev) as an `InterventionDevice`.

The kernel's drivers report pads as Documentation/input/gamepad.rst says: sticks ABS_X/ABS_Y
(left) and ABS_RX/ABS_RY (right), negative left/up; triggers ABS_Z (left) and ABS_RZ (right) from 0,
or BTN_TL2/BTN_TR2; the d-pad ABS_HAT0X/ABS_HAT0Y or BTN_DPAD_*; the action buttons by position
(BTN_SOUTH/EAST/NORTH/WEST). One exception, kept for SDL and Steam: the Xbox drivers (xpad, xone,
xpadneo) send X (west) as BTN_X, which is BTN_NORTH's code, and Y (north) as BTN_Y (BTN_WEST's), so
the "xbox" layout swaps those two back. Ranges differ (xpad sticks -32768..32767, triggers 0..255 or
0..1023; hid-playstation sticks and triggers 0..255, sticks resting at 128): every axis is
normalised from the device's own absinfo. Buttons are named by position ("south" is A on an Xbox
pad and Cross on a PlayStation pad), so one button map fits both.

Who acts: a stick, trigger or d-pad beyond the dead zone, a gripper button, or a held "takeover"
button makes `active` True (with `deadman`, the sticks move the arm only while "takeover" is held).

The one seam to the kernel is `InputBackend` (list the event devices, open one as python-evdev's
`InputDevice`); everything past it (frames, resync after SYN_DROPPED, normalisation, layouts,
reconnection) is the code a real pad runs.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from serl.devices.base import BUTTON_ROLES, CONTROLS, DeviceState, mapped_controls
from serl.devices.gamepad_input import (
    LAYOUTS,
    POSITIONAL,
    SOURCES,
    EvdevBackend,
    EventFrames,
    GamepadNotFound,
    InputBackend,
    OpenPad,
    PadReading,
    decode_pad,
    open_gamepad,
)
from serl.devices.spacemouse import apply_dead_zone, check_signs_and_dead_zone

__all__ = ["Gamepad", "GamepadConfig", "GamepadNotFound", "InputBackend", "gamepad_state"]

log = logging.getLogger("serl.devices.gamepad")

BUTTONS = tuple(dict.fromkeys(POSITIONAL.values()))  # button names, by position on the pad
DEFAULT_BUTTONS = (
    ("south", "close"),  # A / Cross
    ("east", "open"),  # B / Circle
    ("tl", "takeover"),  # LB / L1, held
    ("start", "pause"),  # Menu / Options
    ("select", "abort"),  # View / Create
    ("north", "mark_success"),  # Y / Triangle
    ("west", "mark_failure"),  # X / Square
    ("tr", "confirm_reset"),  # RB / R1
)
MAX_EVENTS = 4096  # events decoded per wake-up, so close() is never kept waiting by a flood


@dataclass(frozen=True)
class GamepadConfig:
    # "": the first gamepad found; else its event device path (a stable /dev/input/by-id/... link)
    # or part of its name, case-insensitive
    device: str = ""
    # Button codes: "xbox" (xpad, xone, xpadneo), "playstation" (hid-playstation, hid-sony: the
    # kernel's positional codes); "auto": playstation for Sony's vendor id, else xbox.
    layout: str = "auto"
    # Pad source driving action x, y, z, rx, ry, rz ("": that axis stays 0). Sources (`SOURCES`):
    # left_x, left_y, right_x, right_y, dpad_x, dpad_y (right and up positive) and triggers (right
    # minus left). Defaults: the operator stands behind the robot, facing along its x axis.
    axes: tuple[str, ...] = ("left_y", "left_x", "triggers", "right_x", "right_y", "dpad_x")
    signs: tuple[float, ...] = (1.0, -1.0, 1.0, 1.0, -1.0, -1.0)  # sign per action axis (1 or -1)
    # |deflection| below this reads 0 and does not take over (worn sticks rest off centre)
    dead_zone: float = 0.15
    # action per unit of deflection beyond the dead zone, xyz (clipped to [-1, 1])
    translation_scale: float = 1.0
    rotation_scale: float = 1.0  # the same for rotations
    # (button, role) pairs; buttons: `BUTTONS`; roles: close/open the gripper, takeover (hold to
    # keep control while still), an operator control
    buttons: tuple[tuple[str, str], ...] = DEFAULT_BUTTONS
    deadman: bool = False  # True: sticks move the arm only while a "takeover" button is held
    reconnect_s: float = 1.0  # seconds between searches for the pad after it was unplugged
    missing_log_s: float = 30.0  # at most one "still missing" warning this often while it is gone
    poll_s: float = 0.05  # the reader's longest wait for events before it checks for close()

    def __post_init__(self) -> None:
        if self.layout not in ("auto", *LAYOUTS):
            raise ValueError(f"gamepad.layout must be auto or one of {list(LAYOUTS)}")
        used = [a for a in self.axes if a]
        if len(self.axes) != 6 or set(used) - set(SOURCES) or len(used) != len(set(used)):
            raise ValueError(
                f"gamepad.axes must be six distinct names of {list(SOURCES)} (or ''), "
                f"got {list(self.axes)}"
            )
        check_signs_and_dead_zone("gamepad", self.signs, self.dead_zone)
        bad = [f"{b}: {r}" for b, r in self.buttons if b not in BUTTONS or r not in BUTTON_ROLES]
        if bad:
            raise ValueError(
                f"gamepad.buttons: unknown {bad}; buttons are {list(BUTTONS)}, roles "
                f"{list(BUTTON_ROLES)}"
            )

    @property
    def controls(self) -> frozenset[str]:
        """The operator controls some button is mapped to (the default map has all five)."""
        return mapped_controls(self.buttons)


def gamepad_state(
    sources: dict[str, float], roles: frozenset[str], cfg: GamepadConfig, connected: bool = True
) -> DeviceState:
    """The device state for pad sources `sources` (`SOURCES`, in [-1, 1]) and the button roles
    pressed since the last read or held. Operator controls alone do not take over."""
    raw = np.array([sources[n] * s if n else 0.0 for n, s in zip(cfg.axes, cfg.signs, strict=True)])
    motion = apply_dead_zone(raw, cfg.dead_zone)
    if cfg.deadman and "takeover" not in roles:
        motion[:] = 0.0
    motion[:3] *= cfg.translation_scale
    motion[3:] *= cfg.rotation_scale
    close, opening = "close" in roles, "open" in roles
    gripper = 0.0 if close == opening else -1.0 if close else 1.0  # both at once: hold
    action = np.append(np.clip(motion, -1.0, 1.0), gripper).astype(np.float32)
    active = bool(np.any(motion != 0.0)) or bool(roles & {"close", "open", "takeover"})
    controls = tuple(c for c in CONTROLS if c in roles)
    return DeviceState(action, controls, active, {"connected": connected})


class Gamepad:
    """Implements `InterventionDevice`. A background thread decodes the pad's events frame by frame;
    `read()` returns the latest deflections and the buttons pressed since the last read or still
    held, without blocking. Unplugged, it reads as idle (`extra["connected"]` False), warns at most
    every `missing_log_s`, and looks for the pad every `reconnect_s`. Raises `GamepadNotFound` at
    construction when none is connected. `backend` replaces the machine's input devices (tests)."""

    def __init__(
        self,
        cfg: GamepadConfig = GamepadConfig(),
        backend: InputBackend | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg, self._clock = cfg, clock
        self.controls = cfg.controls  # the operator controls its buttons can produce
        self._backend = backend or EvdevBackend()
        self._lock = threading.Lock()
        self._sources = dict.fromkeys(SOURCES, 0.0)
        self._held: frozenset[str] = frozenset()
        self._latched: set[str] = set()
        self.frames = 0  # event frames (SYN_REPORT) decoded
        self.reconnects = 0  # times the pad came back after being unplugged
        self._pad: OpenPad | None = None
        self._frames = EventFrames()
        self._gone_since = self._warned_at = 0.0
        pad = open_gamepad(cfg.device, cfg.layout, self._backend)
        try:
            self._attach(pad)
        except Exception:
            pad.device.close()
            raise
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gamepad-reader", daemon=True)
        self._thread.start()

    def read(self) -> DeviceState:
        with self._lock:
            sources, roles = dict(self._sources), self._held | self._latched
            connected, self._latched = self._pad is not None, set()
        return gamepad_state(sources, roles, self.cfg, connected)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        if self._pad is not None:
            self._pad.device.close()
            self._pad = None

    # ---------- the reader thread ----------
    def _run(self) -> None:
        while not self._stop.is_set():
            pad = self._pad
            if pad is None:
                self._stop.wait(self.cfg.reconnect_s)
                self._reconnect()
                continue
            try:
                poller = select.poll()  # not select(): fds past 1024 are legal in a busy actor
                poller.register(pad.device, select.POLLIN)
                poller.poll(self.cfg.poll_s * 1000.0)
                self._drain(pad)
            # a removed device reads ENODEV; anything else unexpected must not kill the reader
            except Exception as err:
                self._disconnected(err)

    def _drain(self, pad: OpenPad) -> None:
        for _ in range(MAX_EVENTS):
            event = pad.device.read_one()
            if event is None:
                return
            step = self._frames.feed(event.type, event.code, event.value)
            if step == "resync":  # the kernel dropped events: read its state instead
                self._frames.reset(pad.snapshot())
            if step:
                self._publish(pad, self._frames.reading, count=True)

    def _publish(self, pad: OpenPad, reading: PadReading, count: bool) -> None:
        sources, names = decode_pad(reading, pad.ranges, pad.layout)
        roles = frozenset(role for button, role in self.cfg.buttons if button in names)
        with self._lock:
            self._sources, self._held = sources, roles
            self._latched |= roles
            self.frames += count

    def _attach(self, pad: OpenPad) -> None:
        self._frames.reset(pad.snapshot())
        self._publish(pad, self._frames.reading, count=False)
        with self._lock:
            self._pad = pad

    def _disconnected(self, err: Exception) -> None:
        pad = self._pad
        log.warning("gamepad %s unplugged or unreadable (%s): idle until it is back",
                    pad.describe(), err)
        with self._lock:
            self._pad, self._held = None, frozenset()
            self._sources = dict.fromkeys(SOURCES, 0.0)
        self._gone_since = self._warned_at = self._clock()
        try:
            pad.device.close()
        except Exception:  # closing a vanished device may fail too; it is gone either way
            pass

    def _reconnect(self) -> None:
        pad = None
        try:
            pad = open_gamepad(self.cfg.device, self.cfg.layout, self._backend)
            self._attach(pad)
        except Exception as err:  # not back yet (or unreadable while it enumerates)
            if pad is not None:
                pad.device.close()
            now = self._clock()
            if now - self._warned_at >= self.cfg.missing_log_s:
                self._warned_at = now
                log.warning("gamepad still missing after %.0f s: %s", now - self._gone_since, err)
            return
        self.reconnects += 1
        log.warning("gamepad back: %s", pad.describe())
