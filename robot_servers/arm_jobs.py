"""The robot server's slow operations (impedance, reset, recover): generators the server advances
once per loop until they return their reply, refused with `Refused` (the message goes back to the
client) or `FaultRefused` (the arm is in fault)."""

from __future__ import annotations

import time
from collections.abc import Generator
from concurrent.futures import Future
from typing import Any

import numpy as np

from serl import geometry as g
from serl.robot.protocol import as_vector
from serl.robot.safety import clip_orientation, clip_position, clip_target

Job = Generator[None, None, dict]
RECOVER_SETTLE_S = 0.15  # after clearing errors, wait this long for a fresh robot-mode message


class Refused(Exception):
    """A request the server will not carry out; the message goes back to the client."""


class FaultRefused(Refused):
    """Refused because the arm is in fault."""



class ArmJobs:
    """The slow operations of `ArmControl` (robot_servers/arm_control.py), which owns the state
    they read and change: `arm`, `cfg`, `limits`, `mode`, `reason`, `target`, `impedance`, and
    `measured`, `require_ready`, `validate_impedance`, `_wrench_excess`, `_hold`, `_send`."""

    def impedance_job(self, args: dict) -> Job:
        self.require_ready()
        params = self.validate_impedance(args.get("params"))
        yield from self._wait(self.arm.set_impedance(params), 5.0, "setting impedance")
        self.impedance.update(params)
        return {"params": dict(self.impedance)}

    def reset_job(self, args: dict) -> Job:
        self.require_ready()
        r = self.cfg.reset
        goal = as_vector(args["pose"], 7, "pose") if args.get("pose") is not None else np.array(
            [*r.tcp_xyz, *r.tcp_quat])
        if not np.linalg.norm(goal[3:]) > 1e-6:
            raise ValueError("reset pose quaternion has zero norm")
        goal_pos = clip_position(goal[:3], self.limits)
        goal_quat = clip_orientation(goal[3:] / np.linalg.norm(goal[3:]), self.limits)
        if args.get("joint_reset"):
            if r.joint_reset is None:
                raise Refused("this rig has no reset.joint_reset configuration")
            self.target = None
            yield from self._wait(
                self.arm.joint_reset(np.asarray(r.joint_reset)), 30.0, "joint reset"
            )
        start = self.measured()
        self.target, self.mode, self.reason = (start.pos, start.quat), "hold", "resetting"
        duration = max(0.2, float(np.linalg.norm(goal_pos - start.pos)) / r.speed,
                       g.quat_angle(goal_quat, start.quat) / r.angular_speed)
        t0 = time.monotonic()
        while True:
            alpha = min(1.0, (time.monotonic() - t0) / duration)
            pos = start.pos + (goal_pos - start.pos) * alpha
            quat = g.slerp_toward(
                start.quat, goal_quat, g.quat_angle(goal_quat, start.quat) * alpha
            )
            s = self.measured()
            if self.mode == "fault":
                raise FaultRefused(f"reset interrupted: robot in fault: {self.reason}")
            over = self._wrench_excess(s)
            if over is not None:
                self._hold(s, over, "wrench_holds")
                self.wrench_hold_unreported = None  # the reply reports it
                raise Refused(f"reset stopped: {over}")
            self._send(*clip_target(pos, quat, s.pos, s.quat, self.limits))
            error = float(np.linalg.norm(s.pos - goal_pos))
            settled = error < r.settle_tolerance and g.quat_angle(s.quat, goal_quat) < 0.05
            if alpha >= 1.0 and settled:
                break
            if time.monotonic() - t0 > duration + r.settle_timeout_s:
                raise Refused(
                    f"unsettled: reset did not reach the pose within "
                    f"{duration + r.settle_timeout_s:.1f} s "
                    f"(position error {error:.4f} m)"
                )
            yield
        task = None
        if args.get("task"):
            future = self.arm.reset_task()
            if future is None:
                raise Refused(
                    "this rig has no task to reset (task=True is for the simulated driver)"
                )
            task = yield from self._wait(future, 5.0, "task reset")
        self.mode, self.reason = "hold", "reset done"
        return {"error_m": error, "task": task}

    def recover_job(self, args: dict) -> Job:
        if self.mode != "fault":
            return {"mode": self.mode}
        s = self.arm.latest()
        if s is not None:  # whatever the controller latches on re-activation is the measured pose
            self.arm.send_target(s.pos, s.quat)
        yield from self._wait(self.arm.clear_errors(), 5.0, "clearing errors", in_fault=True)
        t_clear = time.monotonic()
        while True:
            s = self.arm.latest()
            fresh = (
                s is not None
                and s.received > t_clear
                and time.monotonic() - t_clear > RECOVER_SETTLE_S
            )
            if fresh and self.arm.fault() is None:
                break
            if time.monotonic() - t_clear > 2.0:
                raise FaultRefused(
                    f"still in fault after clearing errors: {self.arm.fault() or 'no robot state'}"
                )
            yield
        self.mode, self.reason = "hold", "recovered"
        self._send(s.pos, s.quat)  # the measured pose, never the stale target
        return {"mode": self.mode}

    def _wait(
        self, future: Future, timeout: float, what: str, in_fault: bool = False
    ) -> Generator[None, None, Any]:
        """Yield until `future` is done; a fault interrupts the wait unless the job runs `in_fault`
        (recover)."""
        deadline = time.monotonic() + timeout
        while not future.done():
            if self.mode == "fault" and not in_fault:
                raise FaultRefused(f"{what} interrupted: robot in fault: {self.reason}")
            if time.monotonic() > deadline:
                raise Refused(f"{what} did not finish within {timeout:.0f} s")
            yield
        try:
            return future.result()
        except Exception as err:  # noqa: BLE001 -- the adapter's failure, reported to the client
            raise Refused(f"{what} failed: {err}") from None
