"""`Keyboard`: teleoperation from a keyboard, for rigs without a SpaceMouse (or for its operator
controls).

Two parts: a pure mapping from the keys' roles (held, and pressed since the last read) to a
`DeviceState`, and a pluggable key source. `TerminalKeys` reads a terminal (the robot PC's console
or an ssh session) in cbreak mode, so it works headless and Ctrl+C still interrupts. A terminal
reports key presses only, never releases: a key counts as held for `held_s` after its last press,
which the terminal's auto-repeat keeps refreshing while the key is down; space stops all motion at
once. Nothing is opened at import time.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from serl.devices.base import CONTROLS, DeviceState

MOTION = {
    "+x": (0, 1.0),
    "-x": (0, -1.0),
    "+y": (1, 1.0),
    "-y": (1, -1.0),
    "+z": (2, 1.0),
    "-z": (2, -1.0),
    "+rx": (3, 1.0),
    "-rx": (3, -1.0),
    "+ry": (4, 1.0),
    "-ry": (4, -1.0),
    "+rz": (5, 1.0),
    "-rz": (5, -1.0),
}
ROLES = (*MOTION, "close", "open", "takeover", "stop", *CONTROLS)

DEFAULT_KEYS = (
    ("w", "+x"),
    ("s", "-x"),
    ("a", "+y"),
    ("d", "-y"),
    ("r", "+z"),
    ("f", "-z"),
    ("u", "+rx"),
    ("o", "-rx"),
    ("i", "+ry"),
    ("k", "-ry"),
    ("j", "+rz"),
    ("l", "-rz"),
    ("c", "close"),
    ("v", "open"),
    ("t", "takeover"),
    (" ", "stop"),
    ("p", "pause"),
    ("x", "abort"),
    ("1", "mark_success"),
    ("0", "mark_failure"),
    ("\n", "confirm_reset"),
    ("\r", "confirm_reset"),
)


@dataclass(frozen=True)
class KeyboardConfig:
    # Roles: ±x/y/z, ±rx/ry/rz (base frame), close, open, takeover (toggle), stop (all motion),
    # operator controls.
    keys: tuple[tuple[str, str], ...] = DEFAULT_KEYS  # (key, role) pairs
    translation: float = 0.5  # action magnitude of a held translation key
    rotation: float = 0.5  # action magnitude of a held rotation key
    # a key counts as held this long after its last press (longer than auto-repeat's delay)
    held_s: float = 0.6

    def __post_init__(self) -> None:
        bad = [role for _, role in self.keys if role not in ROLES]
        if bad:
            raise ValueError(
                f"keyboard.keys: unknown roles {bad}; a key can be one of {list(ROLES)}"
            )

    @property
    def controls(self) -> frozenset[str]:
        """The operator controls some key is bound to."""
        return frozenset(role for _, role in self.keys if role in CONTROLS)


def keyboard_state(
    held: frozenset[str], pressed: frozenset[str], takeover: bool, cfg: KeyboardConfig
) -> DeviceState:
    """The device state for the roles held and pressed since the last read. Opposite keys cancel;
    the operator is in control while a motion or gripper key is down or take-over is on."""
    down = held | pressed
    action = np.zeros(7, np.float32)
    for role in down & MOTION.keys():
        axis, sign = MOTION[role]
        action[axis] += sign * (cfg.translation if axis < 3 else cfg.rotation)
    close, opening = "close" in pressed, "open" in pressed  # one press is one gripper command
    action[6] = 0.0 if close == opening else -1.0 if close else 1.0
    action = np.clip(action, -1.0, 1.0)
    active = bool(np.any(action)) or takeover
    return DeviceState(
        action=action, buttons=tuple(c for c in CONTROLS if c in down), active=active
    )


class KeySource(Protocol):
    def poll(self) -> list[str]:
        """Keys pressed since the last poll, oldest first. Never blocks."""
        ...


class TerminalKeys:
    """Key presses from a terminal or pipe file descriptor. A terminal is put in cbreak mode (keys
    arrive as typed, not echoed, Ctrl+C still raises SIGINT) until `close()`."""

    def __init__(self, fd: int | None = None):
        self.fd = sys.stdin.fileno() if fd is None else fd
        self._saved = None
        if os.isatty(self.fd):
            import termios
            import tty

            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        self.closed = False

    def poll(self) -> list[str]:
        keys = []
        while not self.closed and select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, 1024)
            if not data:  # end of input: nothing more will come
                self.closed = True
                break
            keys.extend(data.decode("utf-8", errors="replace"))
        return keys

    def close(self) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None
        self.closed = True


class Keyboard:
    """Implements `InterventionDevice` over a key source (default: this process's terminal)."""

    def __init__(
        self,
        cfg: KeyboardConfig = KeyboardConfig(),
        source: KeySource | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg, self.clock = cfg, clock
        self.source = source if source is not None else TerminalKeys()
        self.roles = dict(cfg.keys)
        self.controls = cfg.controls  # the operator controls its keys can produce
        self.takeover = False
        self._last_press: dict[str, float] = {}

    def read(self) -> DeviceState:
        now = self.clock()
        pressed = frozenset(self.roles[k] for k in self.source.poll() if k in self.roles)
        if "stop" in pressed:
            self._last_press.clear()
            self.takeover = False
        if "takeover" in pressed:
            self.takeover = not self.takeover
        self._last_press.update(dict.fromkeys(pressed, now))
        held = frozenset(r for r, t in self._last_press.items() if now - t < self.cfg.held_s)
        return keyboard_state(held, pressed, self.takeover, self.cfg)

    def close(self) -> None:
        if callable(close := getattr(self.source, "close", None)):
            close()
