"""The robot server's safety logic, independent of the wire: what a request may do to the arm, the watchdog, the
external-wrench hold and the fault state machine (ok/hold -> fault -> recover -> hold at the measured pose).

Modes: "ok" (tracking the client's targets), "hold" (holding a pose the server chose: no command yet, watchdog,
wrench limit, after reset or recovery; the next set_pose resumes), "fault" (the arm stopped; only recover helps).
Slow operations (reset, recover, impedance) are generators the server advances once per loop until they return.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Generator
from concurrent.futures import Future
from typing import Any

import numpy as np

from robot_servers.adapters.base import ArmState, RosArm
from serl import geometry as g
from serl.robot.hardware_config import IMPEDANCE_KEYS, HardwareConfig
from serl.robot.protocol import as_vector
from serl.robot.safety import clip_orientation, clip_position, clip_target

log = logging.getLogger("arm_control")

Job = Generator[None, None, dict]
RECOVER_SETTLE_S = 0.15  # after clearing errors, wait this long for a fresh robot-mode message


class Refused(Exception):
    """A request the server will not carry out; the message goes back to the client."""


class FaultRefused(Refused):
    """Refused because the arm is in fault."""


def limit_step(pos, quat, prev_pos, prev_quat, max_m: float, max_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """The target moved at most max_m / max_rad away from the previous target."""
    offset = pos - prev_pos
    dist = float(np.linalg.norm(offset))
    if dist > max_m:
        pos = prev_pos + offset * (max_m / dist)
    return pos, g.slerp_toward(prev_quat, quat, max_rad)


class ArmControl:
    def __init__(self, cfg: HardwareConfig, arm: RosArm):
        self.cfg, self.arm, self.limits = cfg, arm, cfg.safety.limits()
        self.mode, self.reason = "hold", "no command yet"
        self.target: tuple[np.ndarray, np.ndarray] | None = None
        self.last_command = -math.inf
        self.seen_state = False
        self.impedance = cfg.impedance.defaults()
        self.counters = {"clipped": 0, "watchdog_holds": 0, "wrench_holds": 0, "faults": 0}
        self.wrench_hold_unreported: str | None = None  # a hold of the safety tick the client has not heard of

    # ---------- reading ----------
    def measured(self) -> ArmState:
        state = self.arm.latest()
        if state is None:
            raise Refused("no robot state yet (is the driver or controller running?)")
        return state

    def require_ready(self) -> None:
        if self.mode == "fault":
            raise FaultRefused(f"robot in fault: {self.reason}; call recover")

    def state(self) -> dict[str, Any]:
        s = self.measured()
        opening, moving = self.arm.gripper_state()
        return {
            "tcp_pose": np.concatenate([s.pos, s.quat]), "tcp_vel": s.twist, "tcp_force": s.force,
            "tcp_torque": s.torque, "q": s.q, "dq": s.dq, "gripper_pos": opening,
            "gripper_width": opening * self.cfg.ros.gripper_max_width, "gripper_moving": moving, "mode": self.mode,
            "fault": self.reason if self.mode == "fault" else None,
            "hold": self.reason if self.mode == "hold" else None, "succeed": self.arm.task_succeeded(),
            "stamp": s.stamp, "target": None if self.target is None else np.concatenate(self.target),
        }

    # ---------- requests ----------
    def set_pose(self, args: dict) -> dict:
        self.require_ready()
        pose = as_vector(args.get("pose"), 7, "pose")
        if not np.linalg.norm(pose[3:]) > 1e-6:
            raise ValueError("pose quaternion has zero norm")
        s = self.measured()
        self.last_command = time.monotonic()
        over = self._wrench_excess(s)
        if over is not None:
            self._hold(s, over, "wrench_holds")
        if self.wrench_hold_unreported is not None:  # this command is dropped, so the client learns of the hold
            reason, self.wrench_hold_unreported = self.wrench_hold_unreported, None
            return {"target": np.concatenate(self.target), "clipped": True, "hold": reason}
        pos, quat = pose[:3], g.canonical_quat(pose[3:] / np.linalg.norm(pose[3:]))
        prev_pos, prev_quat = self.target if self.target is not None else (s.pos, s.quat)
        safety = self.cfg.safety
        new_pos, new_quat = limit_step(pos, quat, prev_pos, prev_quat, safety.max_step_m, safety.max_step_rad)
        new_pos, new_quat = clip_target(new_pos, new_quat, s.pos, s.quat, self.limits)
        clipped = bool(np.linalg.norm(new_pos - pos) > 1e-9 or g.quat_angle(new_quat, quat) > 1e-6)
        self.counters["clipped"] += clipped
        new_quat = g.same_hemisphere(new_quat, s.quat)  # the sign the measured pose uses
        self._send(new_pos, new_quat)
        self.mode, self.reason = "ok", None
        return {"target": np.concatenate([new_pos, new_quat]), "clipped": clipped, "hold": None}

    def gripper(self, args: dict) -> dict:
        self.require_ready()
        command = args.get("command")
        if command not in ("open", "close"):
            raise ValueError(f"gripper command must be 'open' or 'close', got {str(command)[:40]!r}")
        self.arm.gripper(close=command == "close")
        return {}

    def validate_impedance(self, params: Any) -> dict[str, float]:
        if not isinstance(params, dict) or not params:
            raise ValueError(f"impedance params must be a non-empty map of {list(IMPEDANCE_KEYS)}")
        clean = {}
        for key, value in params.items():
            if key not in IMPEDANCE_KEYS:
                raise ValueError(f"unknown impedance parameter {str(key)[:40]!r}; valid: {list(IMPEDANCE_KEYS)}")
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"impedance {key} must be a finite number, got {value!r}")
            lo, hi = self.cfg.impedance.range_of(key)
            if not lo <= value <= hi:
                raise ValueError(f"impedance {key} = {value} is outside the rig's range [{lo}, {hi}]")
            clean[key] = float(value)
        return clean

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
            yield from self._wait(self.arm.joint_reset(np.asarray(r.joint_reset)), 30.0, "joint reset")
        start = self.measured()
        self.target, self.mode, self.reason = (start.pos, start.quat), "hold", "resetting"
        duration = max(0.2, float(np.linalg.norm(goal_pos - start.pos)) / r.speed,
                       g.quat_angle(goal_quat, start.quat) / r.angular_speed)
        t0 = time.monotonic()
        while True:
            alpha = min(1.0, (time.monotonic() - t0) / duration)
            pos = start.pos + (goal_pos - start.pos) * alpha
            quat = g.slerp_toward(start.quat, goal_quat, g.quat_angle(goal_quat, start.quat) * alpha)
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
                raise Refused(f"reset did not reach the pose within {duration + r.settle_timeout_s:.1f} s "
                              f"(position error {error:.4f} m)")
            yield
        task = None
        if args.get("task"):
            future = self.arm.reset_task()
            if future is None:
                raise Refused("this rig has no task to reset (task=True is for the simulated driver)")
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
            fresh = s is not None and s.received > t_clear and time.monotonic() - t_clear > RECOVER_SETTLE_S
            if fresh and self.arm.fault() is None:
                break
            if time.monotonic() - t_clear > 2.0:
                raise FaultRefused(f"still in fault after clearing errors: {self.arm.fault() or 'no robot state'}")
            yield
        self.mode, self.reason = "hold", "recovered"
        self._send(s.pos, s.quat)  # the measured pose, never the stale target
        return {"mode": self.mode}

    # ---------- the periodic safety tick ----------
    def tick(self, now: float) -> None:
        s = self.arm.latest()
        fault = self.arm.fault()
        if s is not None:
            self.seen_state = True
            age = now - s.received
            if age > self.cfg.robot.state_timeout_s:
                fault = fault or f"controller error: no robot state for {age:.2f} s"
        if fault is not None and self.mode != "fault":
            self.mode, self.reason, self.target = "fault", fault, None
            self.counters["faults"] += 1
            log.warning("fault: %s", fault)
        if self.mode == "fault" or s is None:
            return
        over = self._wrench_excess(s)
        if over is not None and not (self.mode == "hold" and self.reason.startswith("external")):
            self._hold(s, over, "wrench_holds")
        elif self.mode == "ok" and now - self.last_command > self.cfg.control.watchdog_s:
            self._hold(s, f"watchdog: no command for {self.cfg.control.watchdog_s} s", "watchdog_holds")

    def _wrench_excess(self, s: ArmState) -> str | None:
        safety = self.cfg.safety
        force, torque = float(np.linalg.norm(s.force)), float(np.linalg.norm(s.torque))
        if force > safety.max_external_force:
            return f"external force {force:.1f} N over the limit {safety.max_external_force} N"
        if torque > safety.max_external_torque:
            return f"external torque {torque:.1f} N m over the limit {safety.max_external_torque} N m"
        return None

    def _hold(self, s: ArmState, reason: str, counter: str) -> None:
        self.mode, self.reason = "hold", reason
        self.counters[counter] += 1
        if counter == "wrench_holds":
            self.wrench_hold_unreported = reason
        self._send(s.pos, s.quat)

    def _send(self, pos: np.ndarray, quat: np.ndarray) -> None:
        self.target = (np.asarray(pos, dtype=np.float64), np.asarray(quat, dtype=np.float64))
        self.arm.send_target(*self.target)

    def _wait(self, future: Future, timeout: float, what: str, in_fault: bool = False) -> Generator[None, None, Any]:
        """Yield until `future` is done; a fault interrupts the wait unless the job runs `in_fault` (recover)."""
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
