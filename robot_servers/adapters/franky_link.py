"""The libfranka adapter's pieces that talk to franky directly: connecting (with one clear message
for a version mismatch or an unreachable FCI), the tracking motion built from the rig file, gains,
and reading libfranka's state into the server's `ArmState`. No threads here
(robot_servers/adapters/libfranka.py owns them)."""

from __future__ import annotations

import importlib.metadata
import math
import re
import time
from dataclasses import dataclass

import numpy as np

from robot_servers.adapters.base import ArmState
from serl.robot.hardware_config import HardwareConfig
from serl.robot.libfranka_config import ERROR_CLIP_SCALE, LibfrankaSection

try:
    import franky
except ImportError as err:  # the robot server on a sim-only install
    raise ImportError(
        "the libfranka adapter needs franky-control: pip install -e '.[robot]' "
        f"(or 'franky-control>=2.0,<3') ({err})"
    ) from None

# Joint limits (rad) the tracking motion's avoidance keeps away from (franky's examples).
JOINT_LIMITS = {
    "fr3": ((-2.9007, -1.8361, -2.9007, -3.0770, -2.8763, 0.4398, -3.0508),
            (2.9007, 1.8361, 2.9007, -0.1169, 2.8763, 4.6216, 3.0508)),
    "panda": ((-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973),
              (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973)),
}
FRANKY_INDEX = "https://timschneider42.github.io/franky/whl/by-robot-server-version"
EE_OFFSET_TOLERANCE_M = 0.001


class LinkError(RuntimeError):
    """The arm cannot be reached or used; the message says what to do."""


def versions() -> dict[str, str]:
    """The installed franky-control and the libfranka its wheel bundles (read from the file name,
    franky exposes no version)."""
    franky_version = importlib.metadata.version("franky-control")
    libfranka = "unknown"
    for f in importlib.metadata.files("franky-control") or ():
        found = re.search(r"libfranka[^/]*\.so\.(\d+\.\d+\.\d+)", str(f))
        if found:
            libfranka = found.group(1)
    return {"franky": franky_version, "libfranka": libfranka}


def explain(err: Exception, host: str) -> str:
    """libfranka's error text, with what to do for the two a lab meets first."""
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, franky.IncompatibleVersionException):
        v = versions()
        server = re.search(r"server version: (\d+)", str(err))
        rs = server.group(1) if server else "<N>"
        return (
            f"robot server version mismatch: {text} Installed: franky-control {v['franky']} with "
            f"libfranka {v['libfranka']}. Install the wheel for this robot's server version: "
            f"pip install --force-reinstall franky-control --extra-index-url {FRANKY_INDEX}/{rs}/"
        )
    if "Connection to FCI refused" in str(err) or "Connection refused" in str(err):
        return f"no FCI at {host} (is FCI activated in Desk, the robot on this network?): {text}"
    if is_lost_link(err):
        return f"lost the connection to the robot at {host} (cable, switch, robot power?): {text}"
    return text


def is_lost_link(err: Exception) -> bool:
    """libfranka's network exception, or the RuntimeError franky raises from its control thread
    when the link drops mid-motion ("Net Exception")."""
    return isinstance(err, franky.NetworkException) or (
        isinstance(err, RuntimeError) and re.search(r"\bnet(work)?\b", str(err), re.I) is not None)


@dataclass
class Link:
    """One connection to the arm: rebuilt whole after a lost connection (a franky.Robot never
    reconnects)."""

    robot: franky.Robot
    gripper: franky.Gripper | None
    limits: tuple[np.ndarray, np.ndarray] | None  # joint limits avoided, None: off
    ee_offset: np.ndarray  # F_T_EE translation: flange to TCP as libfranka reports it (m)
    ee_quat: np.ndarray  # F_T_EE rotation, xyzw


def connect(section: LibfrankaSection) -> Link:
    """Robot and gripper at `section.fci_host`; `LinkError` names the fix."""
    realtime = {"enforce": franky.RealtimeConfig.Enforce, "ignore": franky.RealtimeConfig.Ignore}
    try:
        robot = franky.Robot(
            section.fci_host, realtime_config=realtime[section.realtime],
            default_torque_threshold=section.collision_torque_threshold,
            default_force_threshold=section.collision_force_threshold)
        gripper = franky.Gripper(section.fci_host) if section.gripper else None
        state = robot.state
    except Exception as err:  # noqa: BLE001 -- franky raises its own classes and bare RuntimeError
        raise LinkError(explain(err, section.fci_host)) from None
    f_t_ee = state.F_T_EE
    offset = np.asarray(f_t_ee.translation, dtype=np.float64)
    expected = section.expected_ee_offset_m
    distance = float(np.linalg.norm(offset))
    if expected is not None and abs(distance - expected) > EE_OFFSET_TOLERANCE_M:
        raise LinkError(
            f"libfranka's end-effector frame F_T_EE is {np.round(offset, 4).tolist()} m from the "
            f"flange; the rig expects {expected} m: set the end effector in Desk, or change "
            "libfranka.expected_ee_offset_m (tcp_pose is O_T_EE; no offset is added to it)")
    model = section.arm_model if section.arm_model != "auto" else arm_model_of(robot)
    limits = (tuple(np.asarray(v) for v in JOINT_LIMITS[model])
              if section.joint_limit_avoidance else None)
    return Link(robot, gripper, limits, offset, np.asarray(f_t_ee.quaternion, dtype=np.float64))


def arm_model_of(robot) -> str:
    """"fr3" or "panda" from the URDF the robot reports; LinkError when it names neither (older
    firmware reports none), rather than guessing joint limits."""
    try:
        urdf = str(robot.model_urdf).lower()
    except Exception as err:  # franky raises its own exception types, none shared
        urdf, why = "", f"reading it failed: {err}"
    else:
        why = "it names neither fr3 nor panda"
    for model in ("fr3", "panda"):
        if model in urdf:
            return model
    raise LinkError(f"cannot tell the arm model from the URDF libfranka reports ({why}): set "
                    "libfranka.arm_model to fr3 or panda in the rig file")


def gains(impedance: dict[str, float]) -> franky.CartesianImpedanceGains:
    """Diagonal gains; damping = ratio * 2 * sqrt(stiffness) (the rig file's convention)."""
    kt, kr = impedance["translational_stiffness"], impedance["rotational_stiffness"]
    dt = impedance["translational_damping_ratio"] * 2 * math.sqrt(kt)
    dr = impedance["rotational_damping_ratio"] * 2 * math.sqrt(kr)
    return franky.CartesianImpedanceGains.diagonal(
        np.array([kt] * 3 + [kr] * 3), np.array([dt] * 3 + [dr] * 3))


def error_clips(cfg: HardwareConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis translational (m) and rotational (rad) error clips from the rig's norms."""
    scale = ERROR_CLIP_SCALE[cfg.libfranka.error_clip]
    safety = cfg.safety
    return (np.full(3, safety.max_position_error * scale),
            np.full(3, safety.max_rotation_error * scale))


def tracking_motion(cfg: HardwareConfig, link: Link, impedance: dict[str, float],
                    pos: np.ndarray, quat: np.ndarray) -> franky.CartesianImpedanceTrackingMotion:
    """A fresh tracking motion (motions are single use) holding `pos`/`quat` with `impedance`."""
    trans_clip, rot_clip = error_clips(cfg)
    kwargs = {}
    if link.limits is not None:
        kwargs = {"lower_joint_limits": link.limits[0], "upper_joint_limits": link.limits[1]}
    posture, stiffness = cfg.reset.joint_reset, cfg.libfranka.nullspace_stiffness
    if posture is not None and stiffness > 0:
        # Cartesian impedance leaves the seventh degree of freedom free: without a pull toward
        # the reset posture it drifts episode after episode until joint-limit avoidance pushes
        # the TCP off its target (~1 cm on franky-sim's frictionless arm within 20 episodes).
        kwargs["posture_task"] = franky.PostureTask(np.asarray(posture, np.float64),
                                                    float(stiffness))
    motion = franky.CartesianImpedanceTrackingMotion(
        translational_stiffness=impedance["translational_stiffness"],
        rotational_stiffness=impedance["rotational_stiffness"],
        translational_error_clip=trans_clip, rotational_error_clip=rot_clip, **kwargs)
    motion.set_gains(gains(impedance))
    motion.set_reference(reference(pos, quat))
    return motion


def reference(pos: np.ndarray, quat: np.ndarray) -> franky.CartesianReference:
    return franky.CartesianReference(target=franky.Affine(np.asarray(pos, dtype=np.float64),
                                                          np.asarray(quat, dtype=np.float64)))


def arm_state(robot: franky.Robot, s, received: float) -> ArmState:
    """The server's view of libfranka state `s`: tcp_pose is O_T_EE (already the TCP: Desk's
    end-effector frame and NE_T_EE are in it); twist J(q) dq in the base frame; wrench
    O_F_ext_hat_K."""
    o_t_ee = s.O_T_EE
    dq = np.asarray(s.dq, dtype=np.float64)
    jacobian = np.asarray(robot.model.zero_jacobian(franky.Frame.EndEffector, s))
    wrench = np.asarray(s.O_F_ext_hat_K, dtype=np.float64)
    return ArmState(
        np.asarray(o_t_ee.translation, dtype=np.float64),
        np.asarray(o_t_ee.quaternion, dtype=np.float64),
        jacobian @ dq, wrench[:3].copy(), wrench[3:].copy(),
        np.asarray(s.q, dtype=np.float64), dq, float(s.time.to_sec()), received)


def stop_motion(robot: franky.Robot, timeout_s: float = 3.0) -> None:
    """End a running torque motion gently (damping-only ramp); a dead motion's error is
    swallowed (it was reported when it ended)."""
    try:
        if robot.is_in_control:
            robot.move(franky.TorqueStopMotion(), asynchronous=True)
        deadline = time.monotonic() + timeout_s
        while not robot.join_motion(0.05) and time.monotonic() < deadline:
            pass
    except Exception:  # noqa: BLE001,S110 -- the motion's own failure, already a fault
        pass
