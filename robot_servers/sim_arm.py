"""The simulated Franka behind the ROS 2 driver: the MuJoCo Panda of `serl.envs.sim` with a task
scene, plus what a real arm adds around its controller: faults (reflex, user stop) that stop
tracking until errors are cleared, a joint-space reset move, and impedance parameters that can
change while it runs. No ROS here; one lock guards it.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass

import numpy as np

# mujoco through serl.envs.sim, whose package init picks the GL backend before mujoco is first
# imported
from serl.envs.sim.arm import ImpedanceGains, PandaSim, mujoco
from serl.envs.sim.config import task_defaults
from serl.envs.sim.model import FINGER_TRAVEL
from serl.envs.sim.tasks import TASKS
from serl.robot.hardware_config import HardwareConfig

JOINT_RESET_SPEED = 0.6  # rad/s of the fastest joint during a joint reset


@dataclass(frozen=True)
class ArmReading:
    """One consistent snapshot of the arm, taken under the lock."""

    pos: np.ndarray
    quat: np.ndarray
    twist: np.ndarray
    force: np.ndarray
    torque: np.ndarray
    q: np.ndarray
    dq: np.ndarray
    finger_pos: np.ndarray
    finger_vel: np.ndarray
    fault: str | None
    succeed: bool


class SimArm:
    """Thread-safe wrapper: ROS callbacks command it, the physics thread advances and reads it."""

    def __init__(self, cfg: HardwareConfig):
        if cfg.sim is None:
            raise ValueError("the simulated driver needs the rig file's 'sim' section")
        imp = cfg.impedance
        task_cfg = task_defaults(cfg.sim.task)
        gains = dataclasses.replace(
            task_cfg.gains, translational_stiffness=imp.translational_stiffness,
            rotational_stiffness=imp.rotational_stiffness,
            translational_damping_ratio=imp.translational_damping_ratio,
            rotational_damping_ratio=imp.rotational_damping_ratio)
        self.task = TASKS[cfg.sim.task](task_cfg)
        self.sim = PandaSim(self.task.objects, cfg.sim.physics_dt, gains)
        self.lock = threading.RLock()
        self.rng = np.random.default_rng(cfg.sim.seed)
        self.fault: str | None = None
        self._joint_move: tuple[np.ndarray, np.ndarray, float, float, threading.Event] | None = None
        self.sim.reset_arm(np.asarray(cfg.reset.tcp_xyz), np.asarray(cfg.reset.tcp_quat),
                           self.task.gripper_open_at_reset)
        self.task.reset(self.sim, self.rng)

    # ---------- commands (from ROS callbacks) ----------
    def set_equilibrium(self, pos: np.ndarray, quat: np.ndarray) -> bool:
        """Track a new equilibrium pose; ignored (False) while in fault or during a joint reset, as
        the real controller is then inactive."""
        if not (
            np.all(np.isfinite(pos)) and np.all(np.isfinite(quat)) and np.linalg.norm(quat) > 1e-6
        ):
            return False
        with self.lock:
            if self.fault is not None or self._joint_move is not None:
                return False
            self.sim.set_target(pos, quat / np.linalg.norm(quat))
            return True

    def set_gripper(self, opening: float) -> None:
        with self.lock:
            if self.fault is None:
                self.sim.set_gripper(opening)

    def inject_fault(self, reason: str) -> None:
        """A reflex or user stop: the arm stops where it is and ignores targets until errors are
        cleared."""
        with self.lock:
            self.fault = reason
            self._hold_here()

    def clear_errors(self) -> None:
        """Errors cleared; like the real controller on activation, tracking restarts at the measured
        pose."""
        with self.lock:
            self._hold_here()
            self.fault = None

    def _hold_here(self) -> None:
        pos, quat = self.sim.tcp_pose()
        self.sim.set_target(pos, quat)
        width = float(self.sim.data.qpos[self.sim.finger_qpos].sum()) / 2
        self.sim.set_gripper(width / FINGER_TRAVEL)

    def set_gains(self, **changes: float) -> None:
        """Change stiffness or damping ratios (the controller reads them at every physics step)."""
        with self.lock:
            gains: ImpedanceGains = dataclasses.replace(self.sim.gains, **changes)
            kt, kr = gains.translational_stiffness, gains.rotational_stiffness
            stiffness = np.array([kt, kt, kt, kr, kr, kr])
            zeta = np.array(
                [gains.translational_damping_ratio] * 3 + [gains.rotational_damping_ratio] * 3
            )
            # PandaSim precomputes these from its gains; refreshed in place so the controller picks
            # them up.
            self.sim.gains = gains
            self.sim._stiffness[:] = stiffness
            self.sim._damping[:] = 2.0 * zeta * np.sqrt(stiffness)

    def reset_task(self) -> dict:
        """Place the task's objects afresh (seeded draw); returns the object's pose."""
        with self.lock:
            self.task.reset(self.sim, self.rng)
            mujoco.mj_forward(self.sim.model, self.sim.data)
            pos, quat = self.sim.object_pose(self.task.object_body)
            return {"object": self.task.object_body, "pos": pos.tolist(), "quat": quat.tolist()}

    def start_joint_move(self, q_goal: np.ndarray, now: float) -> threading.Event:
        """Begin a joint-space move to `q_goal` (the physics thread carries it out); the event is
        set when done."""
        with self.lock:
            if self.fault is not None:
                raise RuntimeError(f"cannot reset joints in fault ({self.fault})")
            q0 = self.sim.data.qpos[:7].copy()
            duration = max(0.5, float(np.max(np.abs(q_goal - q0))) / JOINT_RESET_SPEED)
            done = threading.Event()
            self._joint_move = (q0, np.asarray(q_goal, dtype=np.float64), now, duration, done)
            return done

    # ---------- the physics thread ----------
    def advance(self, duration: float, now: float) -> None:
        with self.lock:
            if self._joint_move is not None:
                self._step_joint_move(now)
            self.sim.advance(duration)

    def _step_joint_move(self, now: float) -> None:
        q0, q1, t0, duration, done = self._joint_move
        alpha = min(1.0, (now - t0) / duration)
        s = 0.5 - 0.5 * math.cos(math.pi * alpha)  # smooth start and stop
        q = q0 + (q1 - q0) * s
        d = self.sim.data
        d.qpos[:7], d.qvel[:7] = q, 0.0
        self.sim.null_posture = q.copy()
        mujoco.mj_forward(self.sim.model, d)
        # the impedance controller holds wherever the joints are
        self.sim.set_target(*self.sim.tcp_pose())
        if alpha >= 1.0:
            self._joint_move = None
            done.set()

    def read(self) -> ArmReading:
        with self.lock:
            s = self.sim
            pos, quat = s.tcp_pose()
            force, torque = s.tcp_wrench()
            return ArmReading(
                pos=pos,
                quat=quat,
                twist=s.tcp_twist(),
                force=force,
                torque=torque,
                q=s.data.qpos[:7].copy(),
                dq=s.data.qvel[:7].copy(),
                finger_pos=s.data.qpos[s.finger_qpos].copy(),
                finger_vel=s.data.qvel[s.finger_dofs].copy(),
                fault=self.fault,
                succeed=bool(self.task.success(s)),
            )
