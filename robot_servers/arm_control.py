"""The robot server's safety logic, independent of the wire: what a request may do to the arm, the
watchdog, the external-wrench hold and the fault state machine (ok/hold -> fault -> recover -> hold
at the measured pose).

Modes: "ok" (tracking the client's targets), "hold" (holding a pose the server chose: no command
yet, watchdog, wrench limit, after reset or recovery; the next set_pose resumes), "fault" (the arm
stopped; only recover helps). Slow operations (reset, recover, impedance) are generators the server
advances once per loop until they return.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from robot_servers.adapters.base import Arm, ArmState
from robot_servers.arm_jobs import ArmJobs, FaultRefused, Refused
from serl import geometry as g
from serl.robot.hardware_config import HardwareConfig
from serl.robot.impedance_config import IMPEDANCE_KEYS
from serl.robot.protocol import as_vector
from serl.robot.safety import clip_target

log = logging.getLogger("arm_control")



def limit_step(
    pos, quat, prev_pos, prev_quat, max_m: float, max_rad: float
) -> tuple[np.ndarray, np.ndarray]:
    """The target moved at most max_m / max_rad away from the previous target."""
    offset = pos - prev_pos
    dist = float(np.linalg.norm(offset))
    if dist > max_m:
        pos = prev_pos + offset * (max_m / dist)
    return pos, g.slerp_toward(prev_quat, quat, max_rad)


class ArmControl(ArmJobs):
    """What requests may do to the arm, the safety tick and the mode (module docstring)."""

    def __init__(self, cfg: HardwareConfig, arm: Arm):
        self.cfg, self.arm, self.limits = cfg, arm, cfg.safety.limits()
        self.mode, self.reason = "hold", "no command yet"
        self.target: tuple[np.ndarray, np.ndarray] | None = None
        self.last_command = -math.inf
        self.seen_state = False
        self.impedance = cfg.impedance.defaults()
        self.counters = {"clipped": 0, "watchdog_holds": 0, "wrench_holds": 0, "faults": 0}
        # a hold of the safety tick the client has not heard of
        self.wrench_hold_unreported: str | None = None

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
            "tcp_pose": np.concatenate([s.pos, s.quat]),
            "tcp_vel": s.twist,
            "tcp_force": s.force,
            "tcp_torque": s.torque,
            "q": s.q,
            "dq": s.dq,
            "gripper_pos": opening,
            "gripper_width": opening * self.cfg.ros.gripper_max_width,
            "gripper_moving": moving,
            "mode": self.mode,
            "fault": self.reason if self.mode == "fault" else None,
            "hold": self.reason if self.mode == "hold" else None,
            "succeed": self.arm.task_succeeded(),
            "object_pose": self.arm.object_pose(),
            "stamp": s.stamp,
            "target": None if self.target is None else np.concatenate(self.target),
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
        # this command is dropped, so the client learns of the hold
        if self.wrench_hold_unreported is not None:
            reason, self.wrench_hold_unreported = self.wrench_hold_unreported, None
            return {"target": np.concatenate(self.target), "clipped": True, "hold": reason}
        pos, quat = pose[:3], g.canonical_quat(pose[3:] / np.linalg.norm(pose[3:]))
        prev_pos, prev_quat = self.target if self.target is not None else (s.pos, s.quat)
        safety = self.cfg.safety
        new_pos, new_quat = limit_step(
            pos, quat, prev_pos, prev_quat, safety.max_step_m, safety.max_step_rad
        )
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
            raise ValueError(
                f"gripper command must be 'open' or 'close', got {str(command)[:40]!r}"
            )
        self.arm.gripper(close=command == "close")
        return {}

    def validate_impedance(self, params: Any) -> dict[str, float]:
        if not isinstance(params, dict) or not params:
            raise ValueError(f"impedance params must be a non-empty map of {list(IMPEDANCE_KEYS)}")
        clean = {}
        for key, value in params.items():
            if key not in IMPEDANCE_KEYS:
                raise ValueError(
                    f"unknown impedance parameter {str(key)[:40]!r}; valid: {list(IMPEDANCE_KEYS)}"
                )
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
            ):
                raise ValueError(f"impedance {key} must be a finite number, got {value!r}")
            lo, hi = self.cfg.impedance.range_of(key)
            if not lo <= value <= hi:
                raise ValueError(
                    f"impedance {key} = {value} is outside the rig's range [{lo}, {hi}]"
                )
            clean[key] = float(value)
        return clean

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
            self._hold(
                s, f"watchdog: no command for {self.cfg.control.watchdog_s} s", "watchdog_holds"
            )

    def _wrench_excess(self, s: ArmState) -> str | None:
        safety = self.cfg.safety
        force, torque = float(np.linalg.norm(s.force)), float(np.linalg.norm(s.torque))
        if force > safety.max_external_force:
            return f"external force {force:.1f} N over the limit {safety.max_external_force} N"
        if torque > safety.max_external_torque:
            return (
                f"external torque {torque:.1f} N m over the limit {safety.max_external_torque} N m"
            )
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
