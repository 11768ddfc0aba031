"""The sections of a rig file (`serl.robot.hardware_config`) that say where the robot server
listens, which ROS 2 names it uses, the safety limits, the reset pose and the control loop.
Units: metres, radians, seconds, newtons; quaternions xyzw."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from serl import geometry as g
from serl.ports import is_loopback
from serl.robot.safety import SafetyLimits, clip_orientation, clip_position

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]
Range = tuple[float, float]



class Section(BaseModel):
    """A rig-file section: unknown keys are refused, values are frozen."""


    model_config = ConfigDict(extra="forbid", frozen=True)


class RobotSection(Section):
    address: str = Field(
        "tcp://127.0.0.1:5600",
        description="robot server ZeroMQ address (server binds, env connects)",
    )
    adapter: Literal["sim", "franka_ros2", "libfranka"] = Field(
        "sim", description="libfranka (a real FR3, or franky-sim), franka_ros2, or the sim driver"
    )
    allow_remote: bool = Field(
        False, description="allow binding a non-loopback address (needs the curve_server_* keys)")
    curve_server_secret_key: Path | None = Field(
        None, description="server key pair (zmq certificate), enables CURVE"
    )
    curve_authorized_keys_dir: Path | None = Field(
        None, description="folder of client public keys the server accepts"
    )
    curve_client_secret_key: Path | None = Field(None,
                                                 description="client key pair, for the env side")
    curve_server_public_key: Path | None = Field(None,
                                                 description="server public key, for the env side")
    request_timeout_s: float = Field(1.0, gt=0, le=30,
                                     description="client timeout of one ordinary request")
    reset_timeout_s: float = Field(20.0, gt=0, le=120,
                                   description="client timeout of a reset request")
    owner_timeout_s: float = Field(5.0, gt=0, le=600,
                                   description="owner silent this long: another client may own")
    max_request_bytes: int = Field(65536, ge=1024, le=1 << 24,
                                   description="larger requests get an error reply")
    state_timeout_s: float = Field(0.5, gt=0, le=10,
                                   description="no robot state this long: controller error fault")

    @model_validator(mode="after")
    def _address(self) -> RobotSection:
        parts = urlsplit(self.address)
        if parts.scheme != "tcp" or not parts.hostname or not parts.port:
            raise ValueError(f"address {self.address!r} must look like tcp://HOST:PORT")
        if not is_loopback(parts.hostname):
            if not self.allow_remote:
                raise ValueError(
                    f"address {self.address!r} is not loopback; set allow_remote: true to bind it"
                )
            if self.curve_server_secret_key is None:
                raise ValueError(
                    f"address {self.address!r} is not loopback: without CURVE anyone who reaches "
                    "it could move the arm; set curve_server_secret_key and "
                    "curve_authorized_keys_dir (`serl keys generate DIR`)")
        if (self.curve_server_secret_key is None) != (self.curve_authorized_keys_dir is None):
            raise ValueError("curve_server_secret_key and curve_authorized_keys_dir go together")
        if (self.curve_client_secret_key is None) != (self.curve_server_public_key is None):
            raise ValueError("curve_client_secret_key and curve_server_public_key go together")
        return self


class RosSection(Section):
    equilibrium_pose: str = Field(
        "/cartesian_impedance_controller/equilibrium_pose",
        description="geometry_msgs/PoseStamped the impedance controller tracks",
    )
    current_pose: str = Field("/franka_robot_state_broadcaster/current_pose",
                              description="PoseStamped, measured TCP")
    external_wrench: str = Field(
        "/franka_robot_state_broadcaster/external_wrench_in_base_frame",
        description="WrenchStamped, external wrench at the TCP, base frame",
    )
    joint_states: str = Field("/franka_robot_state_broadcaster/measured_joint_states",
                              description="sensor_msgs/JointState of the 7 arm joints")
    gripper_joint_states: str = Field("/franka_gripper/joint_states",
                                      description="JointState of the two fingers")
    gripper_namespace: str = Field(
        "/franka_gripper", description="franka_gripper node: grasp, move, homing actions"
    )
    robot_mode: str = Field(
        "/franka_robot_state_broadcaster/robot_state",
        description="robot state/mode topic (franka_msgs/FrankaRobotState; sim: std_msgs/String)",
    )
    error_recovery: str = Field("/action_server/error_recovery",
                                description="error recovery action or service")
    impedance_node: str = Field("/cartesian_impedance_controller",
                                description="node whose parameters set impedance")
    controller_manager: str = Field("/controller_manager",
                                    description="ros2_control controller manager (real rigs)")
    impedance_controller: str = Field("cartesian_impedance_controller",
                                      description="controller that tracks poses")
    joint_reset_controller: str = Field(
        "fr3_arm_controller",
        description="joint trajectory controller used for joint resets (real rigs)",
    )
    sim_namespace: str = Field("/sim_franka",
                               description="simulated driver services (faults, task reset)")
    gripper_max_width: float = Field(0.08, gt=0, le=0.3,
                                     description="finger opening (m) that reads as 1")


class SafetySection(Section):
    box_min: Vec3 = Field(description="m, lower corner of the TCP box in the base frame")
    box_max: Vec3 = Field(description="m, upper corner of the TCP box")
    reference_quat: Quat = Field((1.0, 0.0, 0.0, 0.0),
                                 description="xyzw, centre of the orientation cone")
    cone_half_angle: float = Field(0.6, ge=0, le=math.pi,
                                   description="rad, largest tilt of the tool axis")
    yaw_range: Range = Field((-math.pi / 2, math.pi / 2),
                             description="rad, twist about the tool axis vs. reference")
    max_position_error: float = Field(0.05, gt=0, le=0.2,
                                      description="m, largest target-to-measured distance")
    max_rotation_error: float = Field(0.3, gt=0, le=1.0,
                                      description="rad, largest target-to-measured rotation")
    max_step_m: float = Field(0.05, gt=0, le=0.2, description="m, largest target move per command")
    max_step_rad: float = Field(0.3, gt=0, le=1.0,
                                description="rad, largest target rotation per command")
    max_external_force: float = Field(40.0, gt=0, le=200,
                                      description="N, more than this: hold and report")
    max_external_torque: float = Field(8.0, gt=0, le=50,
                                       description="N m, more than this: hold and report")

    @model_validator(mode="after")
    def _consistent(self) -> SafetySection:
        for i, (lo, hi) in enumerate(zip(self.box_min, self.box_max, strict=True)):
            if lo >= hi:
                raise ValueError(f"box_min[{i}] = {lo} must be below box_max[{i}] = {hi}")
        if not math.isclose(float(np.linalg.norm(self.reference_quat)), 1.0, abs_tol=1e-6):
            raise ValueError(
                f"reference_quat {self.reference_quat} must be a unit quaternion (xyzw)"
            )
        lo, hi = self.yaw_range
        if not -math.pi <= lo <= hi <= math.pi:
            raise ValueError(f"yaw_range {self.yaw_range} must satisfy -pi <= low <= high <= pi")
        return self

    def limits(self) -> SafetyLimits:
        """The same limits as the env's `SafetyLimits`."""
        return SafetyLimits(
            xyz_low=self.box_min, xyz_high=self.box_max, reference_quat=self.reference_quat,
            cone_half_angle=self.cone_half_angle, yaw_range=self.yaw_range,
            max_position_error=self.max_position_error, max_rotation_error=self.max_rotation_error)


class ResetSection(Section):
    tcp_xyz: Vec3 = Field(description="m, TCP position of the reset pose")
    tcp_quat: Quat = Field((1.0, 0.0, 0.0, 0.0),
                           description="xyzw, TCP orientation of the reset pose")
    xy_range: float = Field(0.0, ge=0, le=0.2,
                            description="m, env draws the reset xy within +-range")
    yaw_range: float = Field(0.0, ge=0, le=math.pi,
                             description="rad, env draws the reset yaw within +-range")
    joint_reset: tuple[float, float, float, float, float, float, float] | None = Field(
        None, description="rad, joint configuration of an optional joint reset")
    speed: float = Field(0.15, gt=0, le=0.5, description="m/s of the interpolated reset move")
    angular_speed: float = Field(0.6, gt=0, le=2.0,
                                 description="rad/s of the interpolated reset move")
    settle_tolerance: float = Field(0.005, gt=0, le=0.05,
                                    description="m, reset is done within this of the pose")
    settle_timeout_s: float = Field(3.0, gt=0, le=30,
                                    description="s allowed to settle after the move")

    def draw_pose(self, rng: np.random.Generator, limits: SafetyLimits) -> np.ndarray:
        """The reset pose (xyz + quat xyzw) with its random xy and yaw offsets, clipped into the
        safety box and cone: a wide randomisation range must not carry the arm outside them."""
        xy = np.asarray(self.tcp_xyz[:2]) + rng.uniform(-1, 1, 2) * self.xy_range
        quat = g.quat_mul(
            g.euler_to_quat([0, 0, rng.uniform(-1, 1) * self.yaw_range]), self.tcp_quat
        )
        pos = clip_position(np.array([xy[0], xy[1], self.tcp_xyz[2]]), limits)
        return np.concatenate([pos, clip_orientation(quat, limits)])


class ControlSection(Section):
    rate_hz: float = Field(10.0, gt=0, le=1000, description="env steps per second")
    action_scale_xyz: float = Field(0.02, gt=0, le=0.1, description="m per step at |a| = 1")
    action_scale_rot: float = Field(0.1, gt=0, le=0.5, description="rad per step at |a| = 1")
    watchdog_s: float = Field(0.25, gt=0, le=5,
                              description="no command this long: the server holds the pose")
    max_frame_age_s: float = Field(0.25, gt=0, le=5, description="older camera frames are an error")
    server_rate_hz: float = Field(100.0, ge=10, le=1000,
                                  description="robot server's safety-loop rate")
