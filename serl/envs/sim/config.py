"""Typed configuration of the simulated Panda tasks. Task geometry (box, reset pose) lives here for
simulated tasks, as it lives in the rig's YAML for real ones."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from serl.robot.safety import SafetyLimits


@dataclass(frozen=True)
class ImpedanceGains:
    translational_stiffness: float = 2000.0  # N/m
    rotational_stiffness: float = 200.0  # N m/rad
    # times 2*sqrt(stiffness): critical for ~4 kg of effective mass
    translational_damping_ratio: float = 2.0
    rotational_damping_ratio: float = 1.0  # times 2*sqrt(stiffness)
    nullspace_stiffness: float = 10.0  # N m/rad, pulls the elbow toward the IK seed posture
    max_position_error: float = 0.05  # m, error the controller acts on at most (bounds force)
    max_rotation_error: float = 0.5  # rad
    gripper_speed: float = 0.1  # m/s of opening width (the Franka Hand moves at up to 0.1 m/s)


@dataclass(frozen=True)
class SimEnvConfig:
    task: Literal["pick_cube", "peg_insert"] = "pick_cube"  # which scene, reset and success test
    image_obs: bool = True  # render the cameras; False gives the state only
    cameras: tuple[str, ...] = ("front", "wrist")  # cameras rendered into the observation
    image_size: int = 128  # pixels, square
    max_episode_steps: int = 100  # steps before truncation
    control_hz: float = 10.0  # env steps per simulated second
    physics_dt: float = 0.002  # s per physics step; the impedance controller runs at this rate
    realtime: bool = False  # pace steps to the control period, as a real robot does
    # sparse: 1 and terminate on success; dense: shaped, for debugging
    reward: Literal["sparse", "dense"] = "sparse"
    action_scale_xyz: float = 0.02  # m per step at |a| = 1
    action_scale_rot: float = 0.1  # rad per step at |a| = 1
    reset_tcp_xyz: tuple[float, float, float] = (0.5, 0.0, 0.2)  # m, nominal TCP position at reset
    reset_tcp_xy_range: float = 0.03  # m, reset TCP drawn uniformly within +-range in x and y
    reset_tcp_yaw_range: float = 0.0  # rad, reset TCP yaw drawn within +-range
    # m, where the cube or hole is placed at reset
    object_xy_low: tuple[float, float] = (0.42, -0.12)
    object_xy_high: tuple[float, float] = (0.58, 0.12)  # m
    object_yaw_range: float = math.pi / 4  # rad, object yaw drawn within +-range
    # m, pick_cube succeeds when the cube is this far above its resting height
    lift_height: float = 0.05
    # m, peg_insert succeeds when the peg tip is this close to the hole's bottom
    insert_tolerance: float = 0.004
    # hold the gripper closed and ignore its command (the peg task's peg stays held)
    gripper_locked: bool = False
    # add the object's pose (cube, or hole) to the state: privileged, for state-only runs
    object_pose: bool = False
    safety: SafetyLimits = field(
        default_factory=lambda: SafetyLimits(xyz_low=(0.3, -0.25, 0.01), xyz_high=(0.7, 0.25, 0.35))
    )
    gains: ImpedanceGains = field(default_factory=ImpedanceGains)

    def __post_init__(self) -> None:
        unknown = set(self.cameras) - {"front", "wrist"}
        if unknown:
            raise ValueError(
                f"unknown camera(s) {sorted(unknown)}; the simulated scene has 'front' and 'wrist'"
            )
        if self.physics_dt <= 0 or self.control_hz <= 0 or self.physics_dt > 1 / self.control_hz:
            raise ValueError(
                f"physics_dt {self.physics_dt} must be positive and at most 1/control_hz"
            )


def task_defaults(task: str) -> SimEnvConfig:
    """The default configuration of a named simulated task."""
    if task == "pick_cube":
        return SimEnvConfig(task="pick_cube")
    if task == "peg_insert":
        return SimEnvConfig(
            task="peg_insert",
            gripper_locked=True,
            object_xy_low=(0.45, -0.08),
            object_xy_high=(0.55, 0.08),
            safety=SafetyLimits(xyz_low=(0.35, -0.2, 0.058), xyz_high=(0.65, 0.2, 0.3)),
        )
    raise ValueError(f"unknown simulated task {task!r}; valid tasks: pick_cube, peg_insert")
