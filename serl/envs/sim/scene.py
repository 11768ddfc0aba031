"""`PandaSimEnv` as a `serl.envs.scene.Scene`: the scripted operator's reads, answered from the
simulator (read only)."""

from __future__ import annotations

import numpy as np

from serl import geometry as g
from serl.envs.scene import Insertion, Pose, TaskKind

FINGERS_MOVING = 1e-3  # m/s of finger joint speed above which the fingers count as moving


class SimScene:
    """Mixin of `PandaSimEnv` (which has `cfg`, `task` and `sim`)."""

    @property
    def task_kind(self) -> TaskKind:
        return TaskKind(self.cfg.task)

    @property
    def action_scale_xyz(self) -> float:
        return self.cfg.action_scale_xyz

    @property
    def action_scale_rot(self) -> float:
        return self.cfg.action_scale_rot

    def lift_height(self) -> float:
        return self.cfg.lift_height

    def object_rest_z(self) -> float:
        return float(self.task.rest_z)

    def tcp_pose(self) -> Pose:
        return self.sim.tcp_pose()

    def object_pose(self) -> Pose:
        return self.sim.object_pose(self.task.object_body)

    def gripper_opening(self) -> float:
        return self.sim.gripper_opening()

    @property
    def gripper_commanded_closed(self) -> bool:
        return self.sim.gripper_target < 0.5

    @property
    def gripper_moving(self) -> bool:
        return bool(abs(self.sim.data.qvel[self.sim.finger_dofs[0]]) > FINGERS_MOVING)

    def insertion(self) -> Insertion:
        data = self.sim.data
        return Insertion(peg_tip=data.site("peg_bottom").xpos.copy(),
                         hole_bottom=data.site("hole_bottom").xpos.copy(),
                         hole_quat=g.wxyz_to_xyzw(np.asarray(data.body("hole").xquat)))
