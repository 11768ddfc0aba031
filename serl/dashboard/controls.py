"""`PageControls`: the dashboard's buttons as an `InterventionDevice` that only presses operator
controls (it never moves the arm), merged with the hardware device's by
`serl.devices.WithControls`, so the page gives exactly the controls the keyboard gives."""

from __future__ import annotations

import threading

import numpy as np

from serl.devices.base import CONTROLS, IDLE, DeviceState, check_controls


class PageControls:
    """Presses from the server's threads (`press`), read by the actor's thread (`read`): a press
    shows in the next read only, so each click is one rising edge."""

    controls = frozenset(CONTROLS)

    def __init__(self):
        self._lock = threading.Lock()
        self._pressed: set[str] = set()
        self.presses = 0  # every press so far (for the page and the tests)

    def press(self, name: str) -> None:
        check_controls([name])
        with self._lock:
            self._pressed.add(name)
            self.presses += 1

    def read(self) -> DeviceState:
        with self._lock:
            pressed, self._pressed = self._pressed, set()
        if not pressed:
            return IDLE
        return DeviceState(np.zeros(7, np.float32), tuple(c for c in CONTROLS if c in pressed))
