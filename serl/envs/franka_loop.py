"""`ControlClock`: the one place `FrankaEnv`'s loop sleeps. Each step ends at the end of its control
period; a late step is an overrun (counted, logged, reported), and the next period starts from then,
never catching up with a burst of commands. A long gap between steps (the operator paused) restarts
the clock instead of counting as an overrun."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("serl.envs.franka_env")


class ControlClock:
    """Paces steps to `period` seconds; `pause_periods` periods between steps count as a pause."""

    def __init__(self, period: float, pause_periods: float):
        self.period, self.pause_periods = period, pause_periods
        self.overruns = 0  # control periods that ended late (the step took longer than the period)
        # last step's timing: obs_age_s (at publish), rtt_s, period_s, overrun_s
        self.loop: dict[str, float] = {}
        self._deadline = 0.0
        self._last_tick = 0.0

    def restart(self) -> None:
        """Start the control period afresh from now (after a pause the caller knows about)."""
        self._deadline = self._last_tick = time.monotonic()

    def begin_step(self) -> None:
        """Called as a step starts: a gap since the last tick longer than the pause threshold was a
        pause (operator, reset wait), not an overrun of this step."""
        if time.monotonic() - self._last_tick > self.pause_periods * self.period:
            self.restart()

    def pace(self) -> None:
        """Sleep to the end of the control period; a late step is an overrun."""
        self._deadline += self.period
        now = time.monotonic()
        if now < self._deadline:
            time.sleep(self._deadline - now)
            self.loop["overrun_s"] = 0.0
        else:
            self.overruns += 1
            self.loop["overrun_s"] = now - self._deadline
            if self.overruns in (1, 10, 100) or self.overruns % 1000 == 0:
                log.warning("control period overrun by %.1f ms (%d overruns so far)",
                            1e3 * (now - self._deadline), self.overruns)
            # start the next period now, never try to catch up with a burst of commands
            self._deadline = now
        tick = time.monotonic()
        self.loop["period_s"], self._last_tick = tick - self._last_tick, tick
