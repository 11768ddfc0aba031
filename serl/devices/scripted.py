"""`ScriptedOperator`: a simulated person at the SpaceMouse. It plans from a `serl.envs.scene.Scene`
(read only) and acts only through the 7-D device action, in the base frame and within the action
scale, so tests and the demo drive the real intervention path. Solves both simulated tasks; knobs
add noise and set how often it takes over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from serl import geometry as g
from serl.devices.base import DeviceState
from serl.envs.scene import Scene, TaskKind, scene_of


@dataclass(frozen=True)
class ScriptedOperatorConfig:
    # std of Gaussian noise added to each action component (before clipping to [-1, 1])
    noise_std: float = 0.0
    # chance per step of taking over while not in control; 1.0 = always in control
    takeover_prob: float = 1.0
    takeover_steps: int = 10  # steps a take-over lasts once started
    # fraction of the remaining error corrected per step (below 1 to avoid overshoot)
    gain: float = 0.8

    def driving(self) -> ScriptedOperatorConfig:
        """This operator in control at every step (demos, labels, `serl scripted`), whatever
        take-over schedule the task sets for training."""
        return replace(self, takeover_prob=1.0)


def _wrap_quarter(angle: float) -> float:
    """An angle reduced modulo pi/2 into (-pi/4, pi/4]: square objects look the same every quarter
    turn."""
    return (angle + math.pi / 4) % (math.pi / 2) - math.pi / 4


def _heading(quat_xyzw: np.ndarray) -> float:
    """Heading (about base z) of the tool x axis."""
    x_axis = g.quat_to_mat(quat_xyzw)[:, 0]
    return math.atan2(x_axis[1], x_axis[0])


def _yaw_of(quat_xyzw: np.ndarray) -> float:
    return float(g.quat_to_euler(quat_xyzw)[2])


class ScriptedOperator:
    """Implements `InterventionDevice` over a `Scene`: pass the env (a `PandaSimEnv`, a `FrankaEnv`
    on a simulated rig, or any wrapper of them) or the scene itself."""

    def __init__(self, env, cfg: ScriptedOperatorConfig = ScriptedOperatorConfig(),
                 seed: int | None = None):
        self.scene: Scene = scene_of(env)
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        # it only moves: no pause, marks or confirmations
        self.controls: frozenset[str] = frozenset()
        # multiplies takeover_prob; the actor lowers it as evaluation success rises
        self.takeover_scale = 1.0
        self._takeover_left = 0
        self._plan = {TaskKind.PICK_CUBE: self._plan_pick,
                      TaskKind.PEG_INSERT: self._plan_insert}[self.scene.task_kind]

    # ---------- InterventionDevice ----------
    def read(self) -> DeviceState:
        action = self.plan()
        if self.cfg.noise_std > 0:
            action[:6] += self.rng.normal(0.0, self.cfg.noise_std, 6)
        return DeviceState(action=np.clip(action, -1.0, 1.0).astype(np.float32),
                           active=self._active())

    def _active(self) -> bool:
        prob = self.cfg.takeover_prob * self.takeover_scale
        if prob >= 1.0:
            return True
        if self._takeover_left == 0 and self.rng.random() < prob:
            self._takeover_left = self.cfg.takeover_steps
        if self._takeover_left > 0:
            self._takeover_left -= 1
            return True
        return False

    # ---------- planning ----------
    def plan(self) -> np.ndarray:
        """The base-frame action the operator wants now (unclipped, before noise)."""
        return self._plan()

    def _move(self, target_pos: np.ndarray, target_heading: float, gripper: float) -> np.ndarray:
        """Action that moves the TCP toward a position and a gripper-down orientation with the given
        heading."""
        scene = self.scene
        pos, quat = scene.tcp_pose()
        desired = g.quat_mul(g.euler_to_quat([0.0, 0.0, target_heading]), g.GRIPPER_DOWN_XYZW)
        rot_err = g.quat_to_rotvec(g.quat_mul(desired, g.quat_conj(quat)))
        action = np.zeros(7)
        action[:3] = self.cfg.gain * (target_pos - pos) / scene.action_scale_xyz
        action[3:6] = self.cfg.gain * rot_err / scene.action_scale_rot
        action[6] = gripper
        return action

    def _plan_pick(self) -> np.ndarray:
        scene = self.scene
        pos, quat = scene.tcp_pose()
        cube, cube_quat = scene.object_pose()
        heading = _heading(quat)
        goal_heading = heading + _wrap_quarter(_yaw_of(cube_quat) - heading)
        above = np.array([cube[0], cube[1], cube[2] + 0.06])
        if scene.gripper_commanded_closed:
            fingers_moving = scene.gripper_moving
            held = np.linalg.norm(cube - pos) < 0.02 and scene.gripper_opening() > 0.3
            if held and not fingers_moving:
                lift_z = scene.object_rest_z() + scene.lift_height() + 0.03
                return self._move(np.array([pos[0], pos[1], lift_z]), heading, -1.0)
            if fingers_moving:
                return self._move(pos, heading, -1.0)
            return self._move(above, goal_heading, 1.0)  # missed: open and try again
        xy_err = np.linalg.norm(cube[:2] - pos[:2])
        aligned = xy_err < 0.006 and abs(goal_heading - heading) < 0.08
        if not aligned:
            # Travel above the cube first, descending only once roughly over it.
            z = max(cube[2] + 0.06, pos[2]) if xy_err > 0.02 else pos[2]
            return self._move(np.array([cube[0], cube[1], z]), goal_heading, 1.0)
        grasp = np.array([cube[0], cube[1], cube[2]])
        if pos[2] - grasp[2] > 0.004:
            return self._move(grasp, goal_heading, 1.0)
        return self._move(grasp, goal_heading, -1.0)

    def _plan_insert(self) -> np.ndarray:
        scene = self.scene
        pos, quat = scene.tcp_pose()
        where = scene.insertion()
        tip, hole = where.peg_tip, where.hole_bottom
        heading = _heading(quat)
        goal_heading = heading + _wrap_quarter(_yaw_of(where.hole_quat) - heading)
        # Aim the peg tip, not the TCP, at the hole (the peg may sit slightly off the tool axis).
        goal_xy = pos[:2] + (hole[:2] - tip[:2])
        tip_above_walls = 0.05 - (tip[2] - pos[2])  # TCP height that keeps the tip above the rim
        xy_err = np.linalg.norm(hole[:2] - tip[:2])
        inside = tip[2] < hole[2] + 0.035  # the tip is already below the rim
        off = xy_err > 0.003 or abs(goal_heading - heading) > 0.05
        if off and not (inside and xy_err < 0.004):
            z = max(pos[2], tip_above_walls) if xy_err > 0.003 else pos[2]
            return self._move(np.array([goal_xy[0], goal_xy[1], z]), goal_heading, -1.0)
        insert_z = pos[2] - (tip[2] - hole[2]) - 0.005
        return self._move(np.array([goal_xy[0], goal_xy[1], insert_z]), goal_heading, -1.0)
