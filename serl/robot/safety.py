"""The safety box and orientation cone that every commanded target passes through, in the env and
again in the robot server. Pure functions on one pose; no state."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from serl import geometry as g


@dataclass(frozen=True)
class SafetyLimits:
    xyz_low: tuple[float, float, float]  # m, lower corner of the TCP box in the base frame
    xyz_high: tuple[float, float, float]  # m, upper corner of the TCP box
    # xyzw; the cone's centre (TCP down)
    reference_quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    # rad, largest tilt of the tool axis away from the reference's tool axis
    cone_half_angle: float = 0.6
    # rad, twist about the tool axis vs. reference
    yaw_range: tuple[float, float] = (-math.pi / 2, math.pi / 2)
    # m, largest target-to-measured distance (bounds force via stiffness)
    max_position_error: float = 0.05
    max_rotation_error: float = 0.3  # rad, largest target-to-measured rotation

    def __post_init__(self) -> None:
        if any(lo >= hi for lo, hi in zip(self.xyz_low, self.xyz_high, strict=True)):
            raise ValueError(
                f"safety box: xyz_low {self.xyz_low} must be below xyz_high {self.xyz_high}"
            )
        if not 0.0 <= self.cone_half_angle <= math.pi:
            raise ValueError(f"safety cone_half_angle {self.cone_half_angle} must be in [0, pi]")
        lo, hi = self.yaw_range
        if not -math.pi <= lo <= hi <= math.pi:
            raise ValueError(
                f"safety yaw_range {self.yaw_range} must satisfy -pi <= low <= high <= pi"
            )
        if self.max_position_error <= 0 or self.max_rotation_error <= 0:
            raise ValueError("safety max_position_error and max_rotation_error must be positive")
        if not math.isclose(float(np.linalg.norm(self.reference_quat)), 1.0, abs_tol=1e-6):
            raise ValueError(
                f"safety reference_quat {self.reference_quat} must be a unit quaternion (xyzw)"
            )


def clip_position(pos: np.ndarray, limits: SafetyLimits) -> np.ndarray:
    return np.clip(pos, limits.xyz_low, limits.xyz_high)


def cone_coordinates(quat: np.ndarray, limits: SafetyLimits) -> tuple[float, float]:
    """(tilt, yaw) of an orientation relative to the reference: tilt of the tool axis and twist
    about it."""
    rel = g.quat_mul(g.quat_conj(np.asarray(limits.reference_quat)), quat)
    swing, yaw = g.swing_twist(rel)
    return 2.0 * math.acos(min(1.0, abs(swing[3]))), yaw


def clip_orientation(quat: np.ndarray, limits: SafetyLimits) -> np.ndarray:
    """The nearest orientation (tilt, then twist) inside the cone and yaw range."""
    ref = np.asarray(limits.reference_quat, dtype=np.float64)
    rel = g.quat_mul(g.quat_conj(ref), quat)
    swing, yaw = g.swing_twist(rel)
    tilt = 2.0 * math.acos(min(1.0, abs(swing[3])))
    if tilt > limits.cone_half_angle:
        swing = g.rotvec_to_quat(g.quat_to_rotvec(swing) * (limits.cone_half_angle / tilt))
    yaw = min(max(yaw, limits.yaw_range[0]), limits.yaw_range[1])
    twist = np.array([0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)])
    return g.canonical_quat(g.quat_mul(ref, g.quat_mul(swing, twist)))


def clip_target(
    pos: np.ndarray,
    quat: np.ndarray,
    measured_pos: np.ndarray,
    measured_quat: np.ndarray,
    limits: SafetyLimits,
) -> tuple[np.ndarray, np.ndarray]:
    """Clip a target pose into the box and cone, then its distance from the measured pose.

    The distance clip comes last, so the force the impedance controller can apply (stiffness times
    error) is always bounded. While the measured pose is inside the box and cone (or within the
    error bound of them) the result is inside them too; an arm pushed far outside is led back toward
    them one bounded step at a time instead of being yanked.
"""
    pos, quat = np.asarray(pos, dtype=np.float64), np.asarray(quat, dtype=np.float64)
    measured_pos = np.asarray(measured_pos, dtype=np.float64)
    measured_quat = np.asarray(measured_quat, dtype=np.float64)
    for name, value in (("target", (pos, quat)), ("measured", (measured_pos, measured_quat))):
        if not all(np.all(np.isfinite(v)) for v in value):
            raise ValueError(f"{name} pose is not finite: pos={value[0]}, quat={value[1]}")
        if not np.linalg.norm(value[1]) > 1e-6:
            raise ValueError(f"{name} quaternion {value[1]} has no direction (zero norm)")
    pos, quat = clip_position(pos, limits), clip_orientation(quat / np.linalg.norm(quat), limits)
    offset = pos - measured_pos
    dist = float(np.linalg.norm(offset))
    if dist > limits.max_position_error:
        pos = measured_pos + offset * (limits.max_position_error / dist)
    measured_quat = measured_quat / np.linalg.norm(measured_quat)
    # The cone with its yaw range is not geodesically convex: the bounded step toward an inside
    # target can graze its edge, so it is clipped again; should that break the rotation bound, the
    # arm keeps its orientation.
    quat = clip_orientation(g.slerp_toward(measured_quat, quat, limits.max_rotation_error), limits)
    if g.quat_angle(quat, measured_quat) > limits.max_rotation_error + 1e-9:
        quat = g.canonical_quat(measured_quat)
    return pos, quat


def inside(pos: np.ndarray, quat: np.ndarray, limits: SafetyLimits, tol: float = 1e-6) -> bool:
    """Whether a pose is inside the box, cone and yaw range (to tol)."""
    tilt, yaw = cone_coordinates(quat, limits)
    return bool(
        np.all(pos >= np.asarray(limits.xyz_low) - tol)
        and np.all(pos <= np.asarray(limits.xyz_high) + tol)
        and tilt <= limits.cone_half_angle + tol
        and limits.yaw_range[0] - tol <= yaw <= limits.yaw_range[1] + tol
    )
