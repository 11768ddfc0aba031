"""The `libfranka` section of a rig file: how the robot server's libfranka adapter
(`robot_servers/adapters/libfranka.py`, on `franky-control`) reaches the arm and shapes its
Cartesian impedance tracking motion. Units: metres, radians, seconds, newtons."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from serl.robot.rig_sections import Section

# franky's CartesianImpedanceTrackingMotion clips the position error per axis (a box) while the rig
# file's `safety.max_position_error` / `max_rotation_error` are norms. "norm_bound" divides each by
# sqrt(3): the clipped error never exceeds the rig's limit in norm, so |F| <= K * limit holds in
# every direction (a single-axis error is clipped at limit / sqrt(3) though). "per_axis" uses the
# limit on every axis: full force along one axis, up to sqrt(3) * K * limit diagonally.
ERROR_CLIP_SCALE = {"norm_bound": 1.0 / math.sqrt(3.0), "per_axis": 1.0}


class LibfrankaSection(Section):
    fci_host: str = Field("172.16.0.2",
                          description="the control unit's FCI address (Desk: Settings, Network)")
    realtime: Literal["enforce", "ignore"] = Field(
        "enforce", description="libfranka's realtime check: 'ignore' only without an RT kernel"
    )
    error_clip: Literal["norm_bound", "per_axis"] = Field(
        "norm_bound", description="how the rig's error norms become franky's per-axis clips"
    )
    joint_limit_avoidance: bool = Field(True,
                                        description="repel the joints from the arm's limits")
    nullspace_stiffness: float = Field(
        2.0, ge=0, le=20,
        description="N m/rad pulling the redundant posture toward reset.joint_reset (0: off)")
    arm_model: Literal["auto", "fr3", "panda"] = Field(
        "auto", description="joint limits to avoid; auto: from the URDF the robot reports"
    )
    joint_reset_dynamics_factor: float = Field(
        0.2, ge=0.05, le=1.0, description="fraction of max velocity/acceleration/jerk (joint reset)"
    )
    collision_torque_threshold: float = Field(20.0, gt=0, le=100,
                                              description="N m, libfranka's reflex threshold")
    collision_force_threshold: float = Field(30.0, gt=0, le=200,
                                             description="N, libfranka's Cartesian reflex limit")
    expected_ee_offset_m: float | None = Field(
        0.1034, ge=0, le=0.5,
        description="m, flange-to-TCP distance Desk must report (Franka Hand 0.1034); None: any")
    state_rate_hz: float = Field(250.0, ge=50, le=1000, description="robot state read rate")
    gripper: bool = Field(True, description="a Franka Hand is mounted")
    gripper_homing: bool = Field(True, description="home the gripper once at connect")
    gripper_speed: float = Field(0.05, gt=0, le=0.2, description="m/s of gripper moves")
    grasp_force: float = Field(20.0, gt=0, le=140, description="N of a grasp")
    grasp_epsilon_outer: float = Field(
        0.08, ge=0, le=0.1,
        description="m, a close that stops this far open still counts as a grasp (any object)")
    fault_injection: bool = Field(
        False, description="TESTS ONLY: serve inject_reflex / inject_user_stop services")
