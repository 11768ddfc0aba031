"""Conversions between ROS 2 standard messages and numpy in the project's conventions (xyzw, base
frame), and the environment a private, loopback-only ROS 2 graph needs."""

from __future__ import annotations

import math
import os
import signal
import threading

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, WrenchStamped
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

# QoS. A best-effort subscriber matches best-effort and reliable publishers; a reliable one matches
# only reliable publishers; shallow KEEP_LAST queues keep data fresh.
# What the robot server (and test probes) subscribe to robot state with: franka_ros2 >= 3.3
# publishes the state broadcaster's topics best-effort, its gripper and full robot state reliable.
STATE_QOS = QoSProfile(
    depth=5, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST
)
# franka_robot_state_broadcaster's convenience topics (current_pose, measured_joint_states,
# external_wrench_in_base_frame, ...): rclcpp::QoS(1).best_effort() since franka_ros2 3.3.0.
BROADCASTER_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST
)
# Commands (the equilibrium pose: franka_ros2's controllers subscribe with SystemDefaultsQoS, which
# is reliable and matches only reliable publishers), franka_gripper's joint_states (rclcpp depth 1,
# reliable) and the simulated driver's own status topics.
RELIABLE_QOS = QoSProfile(
    depth=5, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST
)
IMAGE_QOS = QoSProfile(
    depth=2, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST
)


def loopback_env(domain_id: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) with a private ROS domain that never leaves the
    host."""
    env = dict(os.environ if base is None else base)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # current ROS 2
    env["ROS_LOCALHOST_ONLY"] = "1"  # older distributions
    return env


def to_stamp(seconds: float) -> Time:
    sec = math.floor(seconds)
    return Time(sec=int(sec), nanosec=int((seconds - sec) * 1e9))


def from_stamp(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def pose_msg(pos: np.ndarray, quat: np.ndarray, stamp: float, frame: str = "base") -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp, msg.header.frame_id = to_stamp(stamp), frame
    p, o = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in pos)
    o.x, o.y, o.z, o.w = (float(v) for v in quat)
    return msg


def pose_from_msg(msg: PoseStamped) -> tuple[np.ndarray, np.ndarray]:
    p, o = msg.pose.position, msg.pose.orientation
    return np.array([p.x, p.y, p.z]), np.array([o.x, o.y, o.z, o.w])


def wrench_msg(
    force: np.ndarray, torque: np.ndarray, stamp: float, frame: str = "base"
) -> WrenchStamped:
    msg = WrenchStamped()
    msg.header.stamp, msg.header.frame_id = to_stamp(stamp), frame
    msg.wrench.force.x, msg.wrench.force.y, msg.wrench.force.z = (float(v) for v in force)
    msg.wrench.torque.x, msg.wrench.torque.y, msg.wrench.torque.z = (float(v) for v in torque)
    return msg


def wrench_from_msg(msg: WrenchStamped) -> tuple[np.ndarray, np.ndarray]:
    f, t = msg.wrench.force, msg.wrench.torque
    return np.array([f.x, f.y, f.z]), np.array([t.x, t.y, t.z])


def image_msg(frame: np.ndarray, stamp: float, frame_id: str) -> Image:
    """An rgb8 sensor_msgs/Image of a uint8 (H, W, 3) frame, stamped with its capture time."""
    msg = Image()
    msg.header.stamp, msg.header.frame_id = to_stamp(stamp), frame_id
    msg.height, msg.width = int(frame.shape[0]), int(frame.shape[1])
    msg.encoding, msg.is_bigendian, msg.step = "rgb8", 0, int(frame.shape[1] * 3)
    msg.data = np.ascontiguousarray(frame, dtype=np.uint8).tobytes()
    return msg


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (rclpy's own handlers are off: shutdown happens in order,
    by us)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def spin_until(executor, stop: threading.Event, beat=None) -> None:
    """Spin `executor` until `stop` is set, so that it is idle when the node and context are torn
    down. `beat`: called every turn (a `StallWatch` heartbeat)."""
    while not stop.is_set():
        executor.spin_once(timeout_sec=0.05)
        if beat is not None:
            beat()
