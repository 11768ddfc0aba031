"""`FrankaEnv` as a `serl.envs.scene.Scene`, from its public state only, so the scripted operator
drives the whole robot path (robot server, ROS 2, simulated driver) on a simulated rig.

The arm comes from the env's latest robot state. The cube's pose comes from the state when the
robot server reports it (`object_pose`: the rig's measured pose), else from where the driver placed
it at reset (`task_info`), carried with the gripper once it is held: the operator only needs it to
find the cube and to tell that it is held. With `FrankaEnvConfig.object_pose` the observation's
privileged `object_pose` is this same reading.
"""

from __future__ import annotations

import numpy as np

from serl.envs.scene import Insertion, Pose, TaskKind
from serl.envs.sim.config import task_defaults

HELD_DISTANCE = 0.02  # m, cube centre to TCP while held (the scripted operator's own test)
HELD_OPENING = 0.3  # the fingers closed on the cube stay at least this open


class FrankaScene:
    """Mixin of `FrankaEnv`; reads its public `rig`, `robot_state`, `gripper_closed`,
    `task_info`."""

    _held_offset: np.ndarray | None = None  # cube centre - TCP while held, else None
    _placement: dict | None = None  # the `task_info` the tracked cube belongs to
    _rest: np.ndarray | None = None  # where the cube lies while not held

    @property
    def task_kind(self) -> TaskKind | None:
        """pick_cube on a simulated rig; None elsewhere (a real rig reports no object to plan from,
        and the simulated driver no peg or hole)."""
        sim = self.rig.sim
        kind = TaskKind(sim.task) if sim is not None else None
        return kind if kind is TaskKind.PICK_CUBE else None

    @property
    def action_scale_xyz(self) -> float:
        return self.rig.control.action_scale_xyz

    @property
    def action_scale_rot(self) -> float:
        return self.rig.control.action_scale_rot

    def lift_height(self) -> float:
        return task_defaults(self._sim_task()).lift_height

    def object_rest_z(self) -> float:
        return float(self._placed()["pos"][2])

    def tcp_pose(self) -> Pose:
        pose = np.asarray(self.robot_state["tcp_pose"], np.float64)
        return pose[:3].copy(), pose[3:].copy()

    def gripper_opening(self) -> float:
        return float(self.robot_state["gripper_pos"])

    @property
    def gripper_commanded_closed(self) -> bool:
        return self.gripper_closed

    @property
    def gripper_moving(self) -> bool:
        return bool(self.robot_state.get("gripper_moving", False))

    def insertion(self) -> Insertion:
        raise ValueError(
            "the simulated driver reports no peg or hole pose: the scripted operator "
            "plans pick_cube only on a simulated rig"
        )

    def object_pose(self) -> Pose:
        state = self.robot_state
        if state.get("object_pose") is not None:
            pose = np.asarray(state["object_pose"], np.float64)
            return pose[:3].copy(), pose[3:].copy()
        placed = self._placed()
        # a new episode: the cube rests where the driver placed it
        if placed is not self._placement:
            self._placement, self._held_offset = placed, None
            self._rest = np.asarray(placed["pos"], np.float64)
        tcp = self.tcp_pose()[0]
        closed_on_it = self.gripper_closed and self.gripper_opening() > HELD_OPENING
        near = np.linalg.norm(self._rest - tcp) < HELD_DISTANCE
        if self._held_offset is None and closed_on_it and near:
            self._held_offset = self._rest - tcp  # grasped: from now on it moves with the gripper
        elif self._held_offset is not None and not closed_on_it:
            # let go: it stays (or drops) here
            self._rest, self._held_offset = tcp + self._held_offset, None
        cube = tcp + self._held_offset if self._held_offset is not None else self._rest
        return cube, np.asarray(placed["quat"], np.float64)

    def observed_object_pose(self) -> np.ndarray:
        """`object_pose()` as the observation's float32 (7,) entry."""
        return np.concatenate(self.object_pose()).astype(np.float32)

    def _sim_task(self) -> str:
        if self.rig.sim is None:
            raise ValueError(f"rig {self.cfg.hardware_config} is not simulated: no task to plan")
        return self.rig.sim.task

    def _placed(self) -> dict:
        if self.task_info is None:
            raise RuntimeError(
                "the simulated driver reported no object pose at reset (reset(task=True))"
            )
        return self.task_info
