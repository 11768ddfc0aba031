"""What differs between the simulated tasks: the objects in the scene, how a reset places them, and
the success test. Each task reads and writes only the object state; the arm is the env's."""

from __future__ import annotations

import math

import numpy as np

from serl import geometry as g
from serl.envs.sim.arm import PandaSim
from serl.envs.sim.config import SimEnvConfig
from serl.envs.sim.gl import mujoco
from serl.envs.sim.model import FINGER_TRAVEL, SceneObjects


def _yaw_quat_wxyz(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


def _place_free_body(sim: PandaSim, joint: str, pos: np.ndarray, quat_wxyz: np.ndarray) -> None:
    j = sim.model.joint(joint)
    sim.data.qpos[j.qposadr[0]: j.qposadr[0] + 7] = np.concatenate([pos, quat_wxyz])
    sim.data.qvel[j.dofadr[0]: j.dofadr[0] + 6] = 0.0


class PickCube:
    """Lift a randomly placed cube by `lift_height`."""

    objects = SceneObjects(with_cube=True)
    object_body = "cube"
    gripper_open_at_reset = 1.0

    def __init__(self, cfg: SimEnvConfig):
        self.cfg = cfg
        self.rest_z = self.objects.cube_half_size

    def reset(self, sim: PandaSim, rng: np.random.Generator) -> None:
        xy = rng.uniform(self.cfg.object_xy_low, self.cfg.object_xy_high)
        yaw = rng.uniform(-self.cfg.object_yaw_range, self.cfg.object_yaw_range)
        _place_free_body(sim, "cube", np.array([xy[0], xy[1], self.rest_z]), _yaw_quat_wxyz(yaw))

    def success(self, sim: PandaSim) -> bool:
        return bool(sim.data.body("cube").xpos[2] >= self.rest_z + self.cfg.lift_height)

    def dense_reward(self, sim: PandaSim) -> float:
        cube = sim.data.body("cube").xpos
        reach = np.linalg.norm(sim.tcp_pose()[0] - cube)
        lift = min(max(cube[2] - self.rest_z, 0.0), self.cfg.lift_height) / self.cfg.lift_height
        return float(0.3 * (1.0 - np.tanh(10.0 * reach)) + 0.7 * lift)


class PegInsert:
    """Insert the peg, held in the hand from the start, into a hole whose pose is randomised."""

    objects = SceneObjects(with_cube=False, with_peg=True)
    object_body = "hole"
    gripper_open_at_reset = 0.0
    grip_below_tcp = 0.02  # m: the fingers hold the peg this far above its centre

    def __init__(self, cfg: SimEnvConfig):
        self.cfg = cfg

    def reset(self, sim: PandaSim, rng: np.random.Generator) -> None:
        xy = rng.uniform(self.cfg.object_xy_low, self.cfg.object_xy_high)
        yaw = rng.uniform(-self.cfg.object_yaw_range, self.cfg.object_yaw_range)
        hole = sim.model.body("hole").mocapid[0]
        sim.data.mocap_pos[hole] = [xy[0], xy[1], 0.0]
        sim.data.mocap_quat[hole] = _yaw_quat_wxyz(yaw)
        # The peg hangs along the tool axis, squeezed between the closed fingers.
        tcp_pos, tcp_quat = sim.tcp_pose()
        axis = g.quat_to_mat(tcp_quat)[:, 2]
        # peg z along -tool z (up when down)
        peg_quat = g.quat_mul(tcp_quat, np.array([1.0, 0.0, 0.0, 0.0]))
        _place_free_body(sim, "peg", tcp_pos + axis * self.grip_below_tcp, g.xyzw_to_wxyz(peg_quat))
        half_gap = self.objects.peg_radius + 0.002  # finger travel at which the pads touch the peg
        sim.data.qpos[sim.finger_qpos] = half_gap - 1e-4
        sim.data.ctrl[sim.gripper_actuator] = 0.0
        sim.gripper_target = 0.0
        assert half_gap < FINGER_TRAVEL
        mujoco.mj_forward(sim.model, sim.data)

    def _depth_error(self, sim: PandaSim) -> tuple[float, float]:
        tip = sim.data.site("peg_bottom").xpos
        bottom = sim.data.site("hole_bottom").xpos
        return float(tip[2] - bottom[2]), float(np.linalg.norm(tip[:2] - bottom[:2]))

    def success(self, sim: PandaSim) -> bool:
        depth, lateral = self._depth_error(sim)
        return depth <= self.cfg.insert_tolerance and lateral <= self.objects.hole_clearance + 0.002

    def dense_reward(self, sim: PandaSim) -> float:
        depth, lateral = self._depth_error(sim)
        return float(1.0 - np.tanh(10.0 * (max(depth, 0.0) + lateral)))


TASKS = {"pick_cube": PickCube, "peg_insert": PegInsert}
