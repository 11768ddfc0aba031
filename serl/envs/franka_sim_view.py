"""`SimRigView`: what the scripted operator (`serl.devices.scripted.ScriptedOperator`) reads from a simulated scene,
rebuilt from a `FrankaEnv` on the simulated rig, so the same operator drives the whole robot path (robot server,
ROS 2, simulated driver) through the same device actions a person's SpaceMouse gives.

The arm comes from the env's latest robot state. The cube's pose comes from the state when the driver reports it
(`object_pose`), else from where the driver placed it at reset, carried with the gripper once it is held: the
operator only needs it to find the cube and to tell that it is held.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from serl.envs.sim.config import task_defaults

HELD_DISTANCE = 0.02  # m, cube centre to TCP while held (the scripted operator's own test)


class _SimFacade:
    """The few `PandaSim` reads the pick-cube plan makes, answered from the rig."""

    finger_dofs = (0,)

    def __init__(self, view: SimRigView):
        self._view = view

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        pose = np.asarray(self._view.env._state["tcp_pose"], np.float64)
        return pose[:3].copy(), pose[3:].copy()

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self._view.cube_pose()

    def gripper_opening(self) -> float:
        return float(self._view.env._state["gripper_pos"])

    @property
    def gripper_target(self) -> float:
        return 0.0 if self._view.env._gripper_closed else 1.0

    @property
    def data(self) -> SimpleNamespace:
        moving = bool(self._view.env._state.get("gripper_moving", False))
        return SimpleNamespace(qvel=np.array([1.0 if moving else 0.0]))


class SimRigView:
    """Pass it where `ScriptedOperator` expects a simulated env: `ScriptedOperator(SimRigView(franka_env))`."""

    def __init__(self, env):
        env = env.unwrapped
        sim = env.rig.sim
        if sim is None or sim.task != "pick_cube":
            raise ValueError("the scripted operator drives the simulated rig's pick_cube task only "
                             f"(rig {env.cfg.hardware_config} has sim section {sim})")
        task = task_defaults(sim.task)
        ctl = env.rig.control
        self.env = env
        self.cfg = SimpleNamespace(task=sim.task, action_scale_xyz=ctl.action_scale_xyz,
                                   action_scale_rot=ctl.action_scale_rot, lift_height=task.lift_height)
        self.task = SimpleNamespace(rest_z=None)
        self.sim = _SimFacade(self)
        self._held_offset: np.ndarray | None = None
        self._episode_info = None

    @property
    def unwrapped(self) -> SimRigView:
        return self

    def cube_pose(self) -> tuple[np.ndarray, np.ndarray]:
        state, info = self.env._state, self.env.task_info
        if "object_pose" in state:
            pose = np.asarray(state["object_pose"], np.float64)
            return pose[:3], pose[3:]
        if info is None:
            raise RuntimeError("the simulated driver reported no object pose at reset (reset(task=True))")
        if info is not self._episode_info:  # a new episode: the cube rests where the driver placed it
            self._episode_info, self._held_offset = info, None
            self._rest = np.asarray(info["pos"], np.float64)
            self.task.rest_z = float(self._rest[2])
        tcp = np.asarray(state["tcp_pose"][:3], np.float64)
        closed_on_it = self.env._gripper_closed and self.sim.gripper_opening() > 0.3
        if self._held_offset is None and closed_on_it and np.linalg.norm(self._rest - tcp) < HELD_DISTANCE:
            self._held_offset = self._rest - tcp  # grasped: from now on it moves with the gripper
        elif self._held_offset is not None and not closed_on_it:
            self._rest, self._held_offset = tcp + self._held_offset, None  # let go: it stays (or drops) here
        cube = tcp + self._held_offset if self._held_offset is not None else self._rest
        return cube, np.asarray(info["quat"], np.float64)


def operator_env(raw):
    """What the scripted operator should read for `raw`: a `SimRigView` of a FrankaEnv on a simulated rig, else
    `raw` itself (a simulated env, or a real rig where the scripted operator has nothing to read)."""
    unwrapped = raw.unwrapped
    rig = getattr(unwrapped, "rig", None)
    if rig is not None and rig.sim is not None and rig.sim.task == "pick_cube":
        return SimRigView(unwrapped)
    return raw
