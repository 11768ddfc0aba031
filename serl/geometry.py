"""Rotation helpers in the project's conventions: quaternions are xyzw, rotation matrices act on
column vectors.

Plain numpy on single poses (the env calls these once per step); the physics-rate controller uses
MuJoCo's own quaternion routines instead.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

# The Franka TCP pointing straight down in the base frame: a half turn about x (roll = pi).
GRIPPER_DOWN_XYZW = np.array([1.0, 0.0, 0.0, 0.0])


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    return Rotation.from_quat(q).as_matrix()


def mat_to_quat(m: np.ndarray) -> np.ndarray:
    return canonical_quat(Rotation.from_matrix(m).as_quat())


def canonical_quat(q: np.ndarray) -> np.ndarray:
    """The sign of q that has w >= 0 (q and -q are the same rotation)."""
    q = np.asarray(q, dtype=np.float64)
    return -q if q[3] < 0 else q


def same_hemisphere(q: np.ndarray, reference: np.ndarray = GRIPPER_DOWN_XYZW) -> np.ndarray:
    """The sign of q nearer the reference: continuous around the working orientations, unlike w >=
    0, which flips sign exactly at the gripper-down pose (w = 0 there)."""
    q = np.asarray(q, dtype=np.float64)
    return -q if np.dot(q, reference) < 0 else q


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a*b of xyzw quaternions (apply b, then a)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ])


def quat_conj(q: np.ndarray) -> np.ndarray:
    return np.array([-q[0], -q[1], -q[2], q[3]])


def quat_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle of the rotation that takes orientation b to orientation a, in [0, pi]."""
    dot = abs(float(np.dot(a, b))) / (np.linalg.norm(a) * np.linalg.norm(b))
    return 2.0 * float(np.arccos(min(1.0, dot)))


def euler_to_quat(rpy: np.ndarray) -> np.ndarray:
    """Extrinsic x-y-z (roll, pitch, yaw about the fixed base axes), the ROS convention."""
    return Rotation.from_euler("xyz", rpy).as_quat()


def quat_to_euler(q: np.ndarray) -> np.ndarray:
    return Rotation.from_quat(q).as_euler("xyz")


def rotvec_to_quat(v: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(v).as_quat()


def quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    return Rotation.from_quat(canonical_quat(q)).as_rotvec()


def wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    return np.array([q[1], q[2], q[3], q[0]])


def xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    return np.array([q[3], q[0], q[1], q[2]])


def swing_twist(q: np.ndarray) -> tuple[np.ndarray, float]:
    """Split a rotation (xyzw) into a swing that tilts the z axis and a twist about z: q = swing *
    twist.

    Returns (swing quaternion, twist angle in (-pi, pi]). A swing of exactly pi leaves the twist
    undefined; it is then taken as zero.
"""
    x, y, z, w = canonical_quat(q)
    norm = np.hypot(z, w)
    if norm < 1e-12:
        return np.array([x, y, z, w]), 0.0
    twist = np.array([0.0, 0.0, z / norm, w / norm])
    swing = quat_mul(np.array([x, y, z, w]), quat_conj(twist))
    return canonical_quat(swing), 2.0 * float(np.arctan2(z, w))


def slerp_toward(q_from: np.ndarray, q_to: np.ndarray, max_angle: float) -> np.ndarray:
    """q_to, or the orientation max_angle along the shortest arc from q_from toward it if that is
    nearer."""
    angle = quat_angle(q_to, q_from)
    if angle <= max_angle:
        return canonical_quat(q_to)
    delta = quat_mul(q_to, quat_conj(q_from))
    axis_angle = quat_to_rotvec(delta)
    return canonical_quat(quat_mul(rotvec_to_quat(axis_angle * (max_angle / angle)), q_from))
