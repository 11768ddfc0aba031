"""`SpaceMouse`: a 3Dconnexion SpaceMouse as an `InterventionDevice`.

pyspacemouse provides the device table (vendor/product ids, where each axis and button sits in the
HID reports) and the decoding; this module adds what a robot needs: a per-rig mapping from the
puck's axes to the base frame, a dead-zone so a puck at rest never takes over, buttons for the
gripper, take-over and operator controls, a background reader so `read()` never blocks, and
reconnection when the device is unplugged and plugged back.

Axes are read in pyspacemouse's right-handed z-up convention (`AxisConvention.HID_Z_UP`): x to the
operator's right, y away from the operator, z up; roll, pitch, yaw about those axes,
counter-clockwise positive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from serl.devices.base import BUTTON_ROLES, CONTROLS, DeviceState, mapped_controls

log = logging.getLogger("serl.devices.spacemouse")

AXES = ("x", "y", "z", "roll", "pitch", "yaw")
# -> the HID devices present, as easyhid's `HIDDevice` objects
HIDEnumerate = Callable[[], Sequence[Any]]
ZERO_STREAM = (
    "SpaceMouse %s is connected, but its %d reports in %.0f s were all zero. If the puck was "
    "moved, this is the known failure of some wireless SpaceMouse receivers, which enumerate and "
    "stream empty reports: check that the puck is switched on, charged and paired "
    "with this receiver, that no other program (spacenavd, 3DxWare) is reading it, and try its "
    "other connection (USB cable, Bluetooth or the receiver); `serl check-rig` lists the HID "
    "devices found"
)


@dataclass(frozen=True)
class SpaceMouseConfig:
    # pyspacemouse model name (e.g. "SpaceMouseCompact"); "": the first supported one found
    model: str = ""
    # puck axis driving action x, y, z, rx, ry, rz
    axes: tuple[str, ...] = ("y", "x", "z", "pitch", "roll", "yaw")
    # Defaults: the operator stands behind the robot, facing along its x axis.
    signs: tuple[float, ...] = (1.0, -1.0, 1.0, 1.0, -1.0, 1.0)  # sign per action axis (1 or -1)
    # |deflection| below this reads 0 and does not take over (the puck never rests at 0)
    dead_zone: float = 0.1
    # action per unit of deflection beyond the dead-zone, xyz (clipped to [-1, 1])
    translation_scale: float = 1.0
    rotation_scale: float = 1.0  # the same for rotations
    # Button roles: "close"/"open" the gripper, "takeover" (hold to keep control while still), an
    # operator control.
    # (pyspacemouse button, role)
    buttons: tuple[tuple[str, str], ...] = (("LEFT", "close"), ("RIGHT", "open"))
    reconnect_s: float = 1.0  # seconds between searches for the device after it was unplugged
    poll_s: float = 0.002  # the reader's sleep when no report is waiting
    # warn once when connected this long and every report so far read zero (0: never)
    zero_warn_s: float = 20.0

    def __post_init__(self) -> None:
        if sorted(self.axes) != sorted(AXES):
            raise ValueError(
                f"spacemouse.axes must name each of {list(AXES)} once, got {list(self.axes)}"
            )
        check_signs_and_dead_zone("spacemouse", self.signs, self.dead_zone)
        bad = [role for _, role in self.buttons if role not in BUTTON_ROLES]
        if bad:
            raise ValueError(
                f"spacemouse.buttons: unknown roles {bad}; a button can be one of "
                f"{list(BUTTON_ROLES)}"
            )

    @property
    def controls(self) -> frozenset[str]:
        """The operator controls some button is mapped to (the default two-button map has none)."""
        return mapped_controls(self.buttons)


class SpaceMouseNotFound(RuntimeError):
    """No connected HID device matches the configured SpaceMouse; the message lists those found."""


# ---------- pure mapping ----------
def check_signs_and_dead_zone(device: str, signs: tuple[float, ...], dead_zone: float) -> None:
    """A ValueError naming `device`'s field unless `signs` are six values of 1 or -1 and
    `dead_zone` is in [0, 1) (the SpaceMouse's and the gamepad's axis settings)."""
    if len(signs) != 6 or any(s not in (-1.0, 1.0) for s in signs):
        raise ValueError(f"{device}.signs must be six values of 1 or -1, got {list(signs)}")
    if not 0.0 <= dead_zone < 1.0:
        raise ValueError(f"{device}.dead_zone must be in [0, 1), got {dead_zone}")


def apply_dead_zone(values: np.ndarray, dead_zone: float) -> np.ndarray:
    """0 inside the dead-zone, then linear from 0 at its edge to 1 at full deflection (no jump at
    the edge)."""
    magnitude = np.maximum(np.abs(values) - dead_zone, 0.0) / (1.0 - dead_zone)
    return np.sign(values) * magnitude


def spacemouse_state(
    axes: dict[str, float], roles: frozenset[str], cfg: SpaceMouseConfig, connected: bool = True
) -> DeviceState:
    """The device state for puck deflections `axes` (HID_Z_UP, about [-1, 1]) and the button roles
    pressed since the last read or held. The operator takes over when a deflection leaves the
    dead-zone or a gripper or take-over button is pressed; operator controls alone do not take
    over."""
    raw = np.array([axes[name] * sign for name, sign in zip(cfg.axes, cfg.signs, strict=True)])
    motion = apply_dead_zone(raw, cfg.dead_zone)
    motion[:3] *= cfg.translation_scale
    motion[3:] *= cfg.rotation_scale
    close, opening = "close" in roles, "open" in roles
    gripper = 0.0 if close == opening else -1.0 if close else 1.0  # both at once: hold
    action = np.append(np.clip(motion, -1.0, 1.0), gripper).astype(np.float32)
    active = bool(np.any(motion != 0.0)) or bool(roles & {"close", "open", "takeover"})
    controls = tuple(c for c in CONTROLS if c in roles)
    return DeviceState(
        action=action, buttons=controls, active=active, extra={"connected": connected}
    )


# ---------- opening through pyspacemouse ----------
def system_hid_devices() -> list:
    """Every HID device on this machine (through easyhid, as pyspacemouse enumerates them)."""
    from easyhid import Enumeration

    try:
        return Enumeration().find()
    except AttributeError:  # easyhid found no hidapi library
        raise RuntimeError(
            "the HID library is not installed (Debian/Ubuntu: apt install libhidapi-hidraw0)"
        ) from None


def describe_hid(dev) -> str:
    return (
        f"{dev.product_string or '?'} by {dev.manufacturer_string or '?'} "
        f"[{dev.vendor_id:04x}:{dev.product_id:04x}] at {dev.path}"
    )


def open_spacemouse(cfg: SpaceMouseConfig, enumerate_hid: HIDEnumerate):
    """The first connected HID device matching `cfg.model` (or any supported model), opened
    non-blocking as a pyspacemouse `SpaceMouseDevice` in the HID_Z_UP convention, with `cfg.buttons`
    checked against its buttons."""
    import pyspacemouse

    specs = pyspacemouse.get_device_specs()
    if cfg.model and cfg.model not in specs:
        raise ValueError(
            f"unknown SpaceMouse model {cfg.model!r}; pyspacemouse knows {sorted(specs)}"
        )
    found = list(enumerate_hid())
    for hid in found:
        for name, spec in specs.items():
            if (hid.vendor_id, hid.product_id) == (
                spec.vendor_id,
                spec.product_id,
            ) and cfg.model in ("", name):
                missing = sorted({button for button, _ in cfg.buttons} - set(spec.button_names))
                if missing:
                    raise ValueError(
                        f"spacemouse.buttons: {name} has no buttons {missing}; "
                        f"its buttons are {list(spec.button_names)}"
                    )
                spec = pyspacemouse.apply_axis_convention(
                    spec, pyspacemouse.AxisConvention.HID_Z_UP
                )
                mouse = pyspacemouse.SpaceMouseDevice(info=spec, device=hid)
                try:
                    mouse.open()
                except RuntimeError as err:
                    raise RuntimeError(
                        f"found {name} ({describe_hid(hid)}) but could not open it ({err}); "
                        "is its hidraw node readable by this user (udev rule)?"
                    ) from None
                hid.set_nonblocking(True)
                return mouse
    listing = "; ".join(describe_hid(d) for d in found) or "none"
    raise SpaceMouseNotFound(
        f"no {cfg.model or 'supported SpaceMouse'} connected. HID devices found: {listing}"
    )


class SpaceMouse:
    """Implements `InterventionDevice`. A background thread reads the HID reports (pyspacemouse
    decodes them); `read()` returns the latest deflection and the buttons pressed since the last
    read or still held, without blocking. Unplugged, it reads as idle (`extra["connected"]` False)
    and looks for the device every `reconnect_s` until it is back. Raises `SpaceMouseNotFound` at
    construction when none is connected. `enumerate_hid` replaces the system's HID enumeration
    (tests feed raw reports through it)."""

    def __init__(
        self, cfg: SpaceMouseConfig = SpaceMouseConfig(), enumerate_hid: HIDEnumerate | None = None
    ):
        self.cfg = cfg
        self.controls = cfg.controls  # the operator controls its buttons can produce
        self._enumerate = enumerate_hid or system_hid_devices
        self._lock = threading.Lock()
        self._axes = dict.fromkeys(AXES, 0.0)
        self._held: frozenset[str] = frozenset()
        self._latched: set[str] = set()
        self.reconnects = 0  # times the device came back after being unplugged
        self._mouse = open_spacemouse(cfg, self._enumerate)
        self._watch = ZeroStreamWatch(self._mouse.name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spacemouse-reader", daemon=True)
        self._thread.start()

    def read(self) -> DeviceState:
        with self._lock:
            axes, roles, connected = (
                dict(self._axes),
                self._held | self._latched,
                self._mouse is not None,
            )
            self._latched = set()
        return spacemouse_state(axes, roles, self.cfg, connected)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        if self._mouse is not None:
            self._mouse.close()
            self._mouse = None

    # ---------- the reader thread ----------
    def _run(self) -> None:
        last = None
        while not self._stop.is_set():
            if self._mouse is None:
                self._stop.wait(self.cfg.reconnect_s)
                self._reconnect()
                last = None
                continue
            try:
                state = self._mouse.read()  # decodes at most one waiting report
            # easyhid raises HIDException (and OSError) once the device is gone
            except Exception as err:
                self._disconnected(err)
                continue
            snapshot = (tuple(getattr(state, name) for name in AXES), tuple(state.buttons))
            self._watch.report(state.t, snapshot, self.cfg.zero_warn_s)
            if snapshot != last:
                last = snapshot
                self._update(*snapshot)
            else:
                self._stop.wait(self.cfg.poll_s)

    def _update(self, axes: tuple[float, ...], buttons: tuple[int, ...]) -> None:
        names = self._mouse.info.button_names
        pressed = {names[i] for i, down in enumerate(buttons) if down}
        roles = frozenset(role for button, role in self.cfg.buttons if button in pressed)
        with self._lock:
            self._axes = dict(zip(AXES, map(float, axes), strict=True))
            self._held = roles
            self._latched |= roles

    def _disconnected(self, err: Exception) -> None:
        log.warning("SpaceMouse unplugged or unreadable (%s): idle until it is back", err)
        with self._lock:
            mouse, self._mouse = self._mouse, None
            self._axes, self._held = dict.fromkeys(AXES, 0.0), frozenset()
        try:
            mouse.close()
        except Exception:  # closing a vanished device may fail too; it is gone either way
            pass

    def _reconnect(self) -> None:
        try:
            mouse = open_spacemouse(self.cfg, self._enumerate)
        except (SpaceMouseNotFound, RuntimeError) as err:
            log.debug("SpaceMouse still missing: %s", err)
            return
        with self._lock:
            self._mouse = mouse
            self.reconnects += 1
        self._watch = ZeroStreamWatch(mouse.name)
        log.warning("SpaceMouse back: %s", mouse.name)


class ZeroStreamWatch:
    """Warns once when a SpaceMouse has been connected `zero_warn_s`, has sent reports, and every
    one decoded to zero axes and no button: the signature of a receiver that enumerates and streams
    but delivers nothing. A puck nobody touched can look alike, hence "if the puck was moved"."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic):
        self.name, self.clock, self.opened = name, clock, clock()
        self.reports, self.alive, self.warned = 0, False, False
        self._last_t: float | None = None

    def report(self, t: float, snapshot: tuple, zero_warn_s: float) -> None:
        """After each read: `t` is pyspacemouse's report time (new report: new t), `snapshot` the
        decoded (axes, buttons)."""
        if t != self._last_t and t >= 0:
            self._last_t, self.reports = t, self.reports + 1
            self.alive = self.alive or any(snapshot[0]) or any(snapshot[1])
        elapsed = self.clock() - self.opened
        if zero_warn_s and self.reports and not (self.alive or self.warned) and (
            elapsed >= zero_warn_s
        ):
            self.warned = True
            log.warning(ZERO_STREAM, self.name, self.reports, elapsed)
