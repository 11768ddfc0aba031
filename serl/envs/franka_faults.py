"""How `FrankaEnv` ends an episode the rig cannot continue: a fault of the arm (reset() then
recovers, after the operator confirms) or a transient failure of the server or a camera (reset()
retries)."""

from __future__ import annotations

import logging

from serl.cameras.base import CameraError
from serl.envs.contract import StepInfo
from serl.robot.client import RobotBusy, RobotFault, RobotTimeout, RobotUnsettled

log = logging.getLogger("serl.envs.franka_env")
# Worth another try: a stalled server or camera, or a reset still running after our request timed
# out (a refusal is not).
TRANSIENT = (RobotTimeout, RobotBusy, RobotUnsettled, CameraError)


class ResetInterrupted(RuntimeError):
    """The arm faulted during a reset's move (a reflex on the way back, a lost connection): the
    next attempt recovers first (after the operator confirms), then resets again."""


class FaultHandling:
    """Mixin of `FrankaEnv` (which has `client`, `confirm_recovery`, `_observe`, `_obs`,
    `_info_stamps` and `_fault`)."""

    def _truncate_on_fault(self, reason: str, obs: dict | None = None, info: dict | None = None):
        """The arm stopped (reflex, user stop, controller error): end the episode; reset()
        recovers."""
        log.error("robot fault, truncating the episode: %s", reason)
        self._fault = reason
        if obs is None:
            try:
                obs, info = self._observe()
            except TRANSIENT as err:
                log.warning("no fresh observation after the fault (%s); the last one stands in",
                            err)
                obs, info = self._last_observation()
        info.update(fault=reason, gripper_changed=False)
        return obs, 0.0, False, True, info

    def _truncate_on_error(self, err: Exception):
        """The server or a camera failed for now: end the episode on the last observation; reset()
        retries."""
        log.error("%s, truncating the episode: %s", type(err).__name__, err)
        obs, info = self._last_observation()
        info.update(error=f"{type(err).__name__}: {err}", gripper_changed=False)
        return obs, 0.0, False, True, info

    def _last_observation(self) -> tuple[dict, dict]:
        info: StepInfo = {"succeed": False, "succeed_known": False,
                          "timestamps": dict(self._info_stamps)}
        return self._obs, info

    def _recover(self, reason: str) -> None:
        if self.confirm_recovery is None:
            raise RobotFault(
                f"robot is in fault ({reason}); recovery needs an operator's confirmation and "
                "this env has no confirm_recovery"
            )
        if not self.confirm_recovery(reason):
            raise RobotFault(f"robot is in fault ({reason}); the operator did not confirm recovery")
        self.client.recover()
        self._fault = None
