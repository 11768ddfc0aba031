"""The TCP twist from the measured joints, J(q)·dq, for the ROS 2 arms: franka_ros2 publishes no
measured end-effector twist (its state broadcaster has only `desired_end_effector_twist`, the
motion generator's command), so the twist is computed from `measured_joint_states` (q, dq) and the
measured TCP position of `current_pose`.

Kinematics: Franka's modified DH table (`serl.envs.sim.model.DH`; the FR3's is the Panda's,
franka_description robots/fr3/kinematics.yaml). Only the joint axes are needed: the TCP point comes
from the measured pose, so Desk's end-effector frame never enters.
"""

from __future__ import annotations

import math

import numpy as np

from serl.envs.sim.model import DH


def joint_axes(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(origins (7, 3), unit z axes (7, 3)) of joints 1..7 in the base frame at angles `q`."""
    rot, pos = np.eye(3), np.zeros(3)
    origins, axes = np.zeros((7, 3)), np.zeros((7, 3))
    for i, ((a, d, alpha), theta) in enumerate(zip(DH, q, strict=True)):
        ca, sa, ct, st = math.cos(alpha), math.sin(alpha), math.cos(theta), math.sin(theta)
        # Craig: Rot_x(alpha_{i-1}) Trans_x(a_{i-1}) Rot_z(theta_i) Trans_z(d_i)
        step = np.array([[ct, -st, 0.0], [st * ca, ct * ca, -sa], [st * sa, ct * sa, ca]])
        pos = pos + rot @ np.array([a, -sa * d, ca * d])
        rot = rot @ step
        origins[i], axes[i] = pos, rot[:, 2]
    return origins, axes


def tcp_twist(q: np.ndarray, dq: np.ndarray, tcp_pos: np.ndarray) -> np.ndarray:
    """Linear then angular velocity (6,) of the point `tcp_pos` (base frame) rigidly attached to
    the flange, for joint velocities `dq`."""
    origins, axes = joint_axes(np.asarray(q, dtype=np.float64))
    dq = np.asarray(dq, dtype=np.float64)
    linear = np.cross(axes, np.asarray(tcp_pos, dtype=np.float64) - origins)
    return np.concatenate([linear.T @ dq, axes.T @ dq])

