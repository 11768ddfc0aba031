"""The validated description of one rig (`hardware_configs/*.yaml`): where the robot server listens, the ROS 2
topics it talks to, cameras, safety limits, reset pose, control rate, impedance and its allowed ranges.

An unknown key or an out-of-range value is a `HardwareConfigError` whose message names the file and the key path
(e.g. `safety.box_max.2`). Units: metres, radians, seconds, newtons; quaternions xyzw.
"""

from __future__ import annotations

import ipaddress
import math
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from serl import geometry as g
from serl.cameras.config import CameraConfig
from serl.robot.safety import SafetyLimits, clip_orientation, clip_position

Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]
Range = tuple[float, float]


class HardwareConfigError(ValueError):
    """A rig file that cannot be used; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RobotSection(_Section):
    address: str = Field("tcp://127.0.0.1:5600", description="robot server ZeroMQ address (server binds, env connects)")
    adapter: Literal["sim", "franka_ros2"] = Field("sim", description="sim driver or franka_ros2")
    allow_remote: bool = Field(False, description="allow binding a non-loopback address (use CURVE then)")
    curve_server_secret_key: Path | None = Field(None, description="server key pair (zmq certificate), enables CURVE")
    curve_authorized_keys_dir: Path | None = Field(None, description="folder of client public keys the server accepts")
    curve_client_secret_key: Path | None = Field(None, description="client key pair, for the env side")
    curve_server_public_key: Path | None = Field(None, description="server public key, for the env side")
    request_timeout_s: float = Field(1.0, gt=0, le=30, description="client timeout of one ordinary request")
    reset_timeout_s: float = Field(20.0, gt=0, le=120, description="client timeout of a reset request")
    owner_timeout_s: float = Field(5.0, gt=0, le=600, description="owner silent this long: another client may own")
    max_request_bytes: int = Field(65536, ge=1024, le=1 << 24, description="larger requests get an error reply")
    state_timeout_s: float = Field(0.5, gt=0, le=10, description="no robot state this long: controller error fault")

    @model_validator(mode="after")
    def _address(self) -> RobotSection:
        parts = urlsplit(self.address)
        if parts.scheme != "tcp" or not parts.hostname or not parts.port:
            raise ValueError(f"address {self.address!r} must look like tcp://HOST:PORT")
        if not self.allow_remote and not _loopback(parts.hostname):
            raise ValueError(f"address {self.address!r} is not loopback; set allow_remote: true to bind it")
        if (self.curve_server_secret_key is None) != (self.curve_authorized_keys_dir is None):
            raise ValueError("curve_server_secret_key and curve_authorized_keys_dir go together")
        if (self.curve_client_secret_key is None) != (self.curve_server_public_key is None):
            raise ValueError("curve_client_secret_key and curve_server_public_key go together")
        return self


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RosSection(_Section):
    equilibrium_pose: str = Field("/cartesian_impedance_controller/equilibrium_pose",
                                  description="geometry_msgs/PoseStamped the impedance controller tracks")
    current_pose: str = Field("/franka_robot_state_broadcaster/current_pose", description="PoseStamped, measured TCP")
    ee_twist: str = Field("/franka_robot_state_broadcaster/measured_end_effector_twist",
                          description="TwistStamped, measured TCP twist in the base frame")
    external_wrench: str = Field("/franka_robot_state_broadcaster/external_wrench_in_base_frame",
                                 description="WrenchStamped, external wrench at the TCP, base frame")
    joint_states: str = Field("/franka_robot_state_broadcaster/measured_joint_states",
                              description="sensor_msgs/JointState of the 7 arm joints")
    gripper_joint_states: str = Field("/fr3_gripper/joint_states", description="JointState of the two fingers")
    gripper_namespace: str = Field("/fr3_gripper", description="gripper actions (grasp, move, homing) or sim command")
    robot_mode: str = Field("/franka_robot_state_broadcaster/robot_state",
                            description="robot state/mode topic (franka_msgs/FrankaRobotState; sim: std_msgs/String)")
    error_recovery: str = Field("/action_server/error_recovery", description="error recovery action or service")
    impedance_node: str = Field("/cartesian_impedance_controller", description="node whose parameters set impedance")
    controller_manager: str = Field("/controller_manager", description="ros2_control controller manager (real rigs)")
    impedance_controller: str = Field("cartesian_impedance_controller", description="controller that tracks poses")
    joint_reset_controller: str = Field("fr3_arm_controller",
                                        description="joint trajectory controller used for joint resets (real rigs)")
    sim_namespace: str = Field("/sim_franka", description="simulated driver services (faults, task reset)")
    gripper_max_width: float = Field(0.08, gt=0, le=0.3, description="finger opening (m) that reads as 1")


class SafetySection(_Section):
    box_min: Vec3 = Field(description="m, lower corner of the TCP box in the base frame")
    box_max: Vec3 = Field(description="m, upper corner of the TCP box")
    reference_quat: Quat = Field((1.0, 0.0, 0.0, 0.0), description="xyzw, centre of the orientation cone")
    cone_half_angle: float = Field(0.6, ge=0, le=math.pi, description="rad, largest tilt of the tool axis")
    yaw_range: Range = Field((-math.pi / 2, math.pi / 2), description="rad, twist about the tool axis vs. reference")
    max_position_error: float = Field(0.05, gt=0, le=0.2, description="m, largest target-to-measured distance")
    max_rotation_error: float = Field(0.3, gt=0, le=1.0, description="rad, largest target-to-measured rotation")
    max_step_m: float = Field(0.05, gt=0, le=0.2, description="m, largest target move per command")
    max_step_rad: float = Field(0.3, gt=0, le=1.0, description="rad, largest target rotation per command")
    max_external_force: float = Field(40.0, gt=0, le=200, description="N, more than this: hold and report")
    max_external_torque: float = Field(8.0, gt=0, le=50, description="N m, more than this: hold and report")

    @model_validator(mode="after")
    def _consistent(self) -> SafetySection:
        for i, (lo, hi) in enumerate(zip(self.box_min, self.box_max, strict=True)):
            if lo >= hi:
                raise ValueError(f"box_min[{i}] = {lo} must be below box_max[{i}] = {hi}")
        if not math.isclose(float(np.linalg.norm(self.reference_quat)), 1.0, abs_tol=1e-6):
            raise ValueError(f"reference_quat {self.reference_quat} must be a unit quaternion (xyzw)")
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


class ResetSection(_Section):
    tcp_xyz: Vec3 = Field(description="m, TCP position of the reset pose")
    tcp_quat: Quat = Field((1.0, 0.0, 0.0, 0.0), description="xyzw, TCP orientation of the reset pose")
    xy_range: float = Field(0.0, ge=0, le=0.2, description="m, env draws the reset xy within +-range")
    yaw_range: float = Field(0.0, ge=0, le=math.pi, description="rad, env draws the reset yaw within +-range")
    joint_reset: tuple[float, float, float, float, float, float, float] | None = Field(
        None, description="rad, joint configuration of an optional joint reset")
    speed: float = Field(0.15, gt=0, le=0.5, description="m/s of the interpolated reset move")
    angular_speed: float = Field(0.6, gt=0, le=2.0, description="rad/s of the interpolated reset move")
    settle_tolerance: float = Field(0.005, gt=0, le=0.05, description="m, reset is done within this of the pose")
    settle_timeout_s: float = Field(3.0, gt=0, le=30, description="s allowed to settle after the move")

    def draw_pose(self, rng: np.random.Generator, limits: SafetyLimits) -> np.ndarray:
        """The reset pose (xyz + quat xyzw) with its random xy and yaw offsets, clipped into the safety box and
        cone: a wide randomisation range must not carry the arm outside them."""
        xy = np.asarray(self.tcp_xyz[:2]) + rng.uniform(-1, 1, 2) * self.xy_range
        quat = g.quat_mul(g.euler_to_quat([0, 0, rng.uniform(-1, 1) * self.yaw_range]), self.tcp_quat)
        pos = clip_position(np.array([xy[0], xy[1], self.tcp_xyz[2]]), limits)
        return np.concatenate([pos, clip_orientation(quat, limits)])


class ControlSection(_Section):
    rate_hz: float = Field(10.0, gt=0, le=1000, description="env steps per second")
    action_scale_xyz: float = Field(0.02, gt=0, le=0.1, description="m per step at |a| = 1")
    action_scale_rot: float = Field(0.1, gt=0, le=0.5, description="rad per step at |a| = 1")
    watchdog_s: float = Field(0.25, gt=0, le=5, description="no command this long: the server holds the pose")
    max_frame_age_s: float = Field(0.25, gt=0, le=5, description="older camera frames are an error")
    server_rate_hz: float = Field(100.0, ge=10, le=1000, description="robot server's safety-loop rate")


# Hard caps no rig file can widen. 3000 N/m and 300 N m/rad are the Cartesian stiffness libfranka's own examples
# set as the arm's default (examples_common.cpp, setDefaultBehavior: setCartesianImpedance {3000 x3, 300 x3});
# franka_ros's Cartesian impedance example lets its stiffness go only to 400 N/m and 30 N m/rad. Damping is a ratio
# of critical damping (2*sqrt(stiffness)): far below 1 oscillates, far above 1 lags and amplifies sensor noise.
STIFFNESS_CAPS = {"translational_stiffness": 3000.0, "rotational_stiffness": 300.0}  # N/m, N m/rad
DAMPING_RATIO_CAP = (0.1, 4.0)  # allowed damping ratios, whatever the rig file says


class ImpedanceSection(_Section):
    translational_stiffness: float = Field(2000.0, gt=0, description="N/m, default")
    rotational_stiffness: float = Field(200.0, gt=0, description="N m/rad, default")
    translational_damping_ratio: float = Field(2.0, gt=0, description="times 2*sqrt(stiffness), default")
    rotational_damping_ratio: float = Field(1.0, gt=0, description="times 2*sqrt(stiffness), default")
    translational_stiffness_range: Range = Field((100.0, 3000.0), description="N/m, allowed values (cap 3000)")
    rotational_stiffness_range: Range = Field((10.0, 300.0), description="N m/rad, allowed values (cap 300)")
    damping_ratio_range: Range = Field((0.3, 3.0), description="allowed damping ratios, both (within 0.1 to 4)")

    @model_validator(mode="after")
    def _defaults_in_range(self) -> ImpedanceSection:
        for name in IMPEDANCE_KEYS:
            lo, hi = self.range_of(name)
            if not 0 < lo <= hi:
                raise ValueError(f"range of {name} {(lo, hi)} must satisfy 0 < low <= high")
            cap_lo, cap_hi = (0.0, STIFFNESS_CAPS[name]) if name in STIFFNESS_CAPS else DAMPING_RATIO_CAP
            if not cap_lo <= lo <= hi <= cap_hi:
                raise ValueError(f"range of {name} {(lo, hi)} goes past the hard limits [{cap_lo}, {cap_hi}] "
                                 "(see STIFFNESS_CAPS in serl/robot/hardware_config.py)")
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(f"{name} = {getattr(self, name)} is outside its range {(lo, hi)}")
        return self

    def range_of(self, name: str) -> Range:
        return {"translational_stiffness": self.translational_stiffness_range,
                "rotational_stiffness": self.rotational_stiffness_range}.get(name, self.damping_ratio_range)

    def defaults(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in IMPEDANCE_KEYS}


IMPEDANCE_KEYS = ("translational_stiffness", "rotational_stiffness", "translational_damping_ratio",
                  "rotational_damping_ratio")


class SimSection(_Section):
    task: Literal["pick_cube", "peg_insert"] = Field("pick_cube", description="simulated task scene")
    seed: int = Field(0, ge=0, description="seed of the object placement at each task reset")
    physics_dt: float = Field(0.002, gt=0, le=0.01, description="s per physics step (controller rate)")
    state_rate_hz: float = Field(100.0, ge=100, le=500, description="state topics publish rate")
    image_rate_hz: float = Field(10.0, ge=10, le=60, description="camera topics publish rate")


class HardwareConfig(_Section):
    robot: RobotSection = Field(default_factory=RobotSection, description="robot server")
    ros: RosSection = Field(default_factory=RosSection, description="ROS 2 names")
    cameras: dict[str, CameraConfig] = Field(default_factory=dict, description="cameras by observation name")
    safety: SafetySection = Field(description="safety box, cone and limits")
    reset: ResetSection = Field(description="reset pose")
    control: ControlSection = Field(default_factory=ControlSection, description="control loop")
    impedance: ImpedanceSection = Field(default_factory=ImpedanceSection, description="impedance and ranges")
    sim: SimSection | None = Field(None, description="simulated driver settings (sim rigs only)")

    @model_validator(mode="after")
    def _reset_inside_box(self) -> HardwareConfig:
        lo, hi = np.asarray(self.safety.box_min), np.asarray(self.safety.box_max)
        xyz = np.asarray(self.reset.tcp_xyz)
        if np.any(xyz < lo) or np.any(xyz > hi):
            raise ValueError(f"reset.tcp_xyz {self.reset.tcp_xyz} is outside the safety box")
        if self.robot.adapter == "sim" and self.sim is None:
            raise ValueError("robot.adapter 'sim' needs a 'sim' section")
        return self


def load_hardware_config(path: str | Path) -> HardwareConfig:
    """Read and validate a rig file; `HardwareConfigError` names the file and the offending key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise HardwareConfigError(f"{path}: cannot read: {err}") from None
    except yaml.YAMLError as err:
        raise HardwareConfigError(f"{path}: not valid YAML: {err}") from None
    return parse_hardware_config(raw, str(path))


def parse_hardware_config(raw: object, source: str = "hardware config") -> HardwareConfig:
    if not isinstance(raw, dict):
        raise HardwareConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return HardwareConfig.model_validate(raw)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"]) or "(top level)"
            problems.append(f"{key}: {e['msg']}")
        raise HardwareConfigError(f"{source}: " + "; ".join(problems)) from None
