"""What the robot server needs from an arm, and the part every ROS 2 arm shares: the standard-typed
state topics of the state broadcaster and the equilibrium pose of the Cartesian impedance
controller.

Adapters are thread-safe: ROS callbacks (executor thread) write, the server loop reads snapshots.
Operations that take time return a `concurrent.futures.Future` whose result is a short message (or
which raises).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from geometry_msgs.msg import PoseStamped, WrenchStamped
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from sensor_msgs.msg import JointState

from robot_servers import ros_msgs as rm
from robot_servers.adapters.joint_twist import tcp_twist
from serl.robot.hardware_config import HardwareConfig

# m/s of finger width: slower than this, the gripper has stopped (or is holding)
GRIPPER_MOVING_SPEED = 0.005


@dataclass(frozen=True)
class ArmState:
    pos: np.ndarray  # TCP position, base frame (m)
    quat: np.ndarray  # TCP orientation, xyzw
    twist: np.ndarray  # TCP linear + angular velocity, base frame
    force: np.ndarray  # external force at the TCP, base frame (N)
    torque: np.ndarray  # external torque at the TCP, base frame (N m)
    q: np.ndarray  # joint angles (rad)
    dq: np.ndarray  # joint velocities (rad/s)
    stamp: float  # driver clock of the pose (s)
    received: float  # time.monotonic() when the pose arrived here


class Arm(Protocol):
    """What `ArmControl` needs from an arm: `RosArm` (the ROS 2 adapters) and `LibfrankaArm`
    (robot_servers/adapters/libfranka.py) both provide it. Each method is documented on
    `RosArm`."""

    def latest(self) -> ArmState | None: ...
    def joint_names(self) -> list[str]: ...
    def gripper_state(self) -> tuple[float, bool]: ...
    def send_target(self, pos: np.ndarray, quat: np.ndarray) -> None: ...
    def gripper(self, close: bool) -> None: ...
    def fault(self) -> str | None: ...
    def clear_errors(self) -> Future: ...
    def set_impedance(self, params: dict[str, float]) -> Future: ...
    def joint_reset(self, q: np.ndarray) -> Future: ...
    def reset_task(self) -> Future | None: ...
    def task_succeeded(self) -> bool | None: ...
    def object_pose(self) -> np.ndarray | None: ...
    def info(self) -> dict: ...
    def close(self) -> None: ...


class RosArm:
    """State subscriptions and the equilibrium publisher on `node`; subclasses add gripper, faults,
    recovery."""

    def __init__(self, node: Node, cfg: HardwareConfig):
        self.node, self.cfg = node, cfg
        ros, qos = cfg.ros, rm.STATE_QOS
        self._lock = threading.Lock()
        self._pose: tuple[np.ndarray, np.ndarray, float, float] | None = None
        self._wrench = (np.zeros(3), np.zeros(3))
        self._joints: tuple[np.ndarray, np.ndarray] | None = None
        self._joint_names: list[str] = []
        self._width: tuple[float, float] | None = None  # (finger width m, monotonic time)
        self._width_speed = 0.0
        self._gripper_command_at = -np.inf
        # franka_ros2's controllers (and the simulated driver) subscribe reliable: only a reliable
        # publisher reaches them
        self._target_pub = node.create_publisher(PoseStamped, ros.equilibrium_pose,
                                                 rm.RELIABLE_QOS)
        self._params = AsyncParameterClient(node, ros.impedance_node)
        node.create_subscription(PoseStamped, ros.current_pose, self._on_pose, qos)
        node.create_subscription(WrenchStamped, ros.external_wrench, self._on_wrench, qos)
        node.create_subscription(JointState, ros.joint_states, self._on_joints, qos)
        node.create_subscription(JointState, ros.gripper_joint_states, self._on_fingers, qos)

    # ---------- subscriptions ----------
    def _on_pose(self, msg: PoseStamped) -> None:
        pos, quat = rm.pose_from_msg(msg)
        with self._lock:
            self._pose = (pos, quat, rm.from_stamp(msg.header.stamp), time.monotonic())

    def _on_wrench(self, msg: WrenchStamped) -> None:
        wrench = rm.wrench_from_msg(msg)
        with self._lock:
            self._wrench = wrench

    def _on_joints(self, msg: JointState) -> None:
        q = np.array(msg.position[:7], dtype=np.float64)
        dq = np.array(msg.velocity[:7], dtype=np.float64) if len(msg.velocity) >= 7 else np.zeros(7)
        if q.shape == (7,):
            with self._lock:
                self._joints, self._joint_names = (q, dq), list(msg.name[:7])

    def _on_fingers(self, msg: JointState) -> None:
        width, now = float(sum(msg.position[:2])), time.monotonic()
        with self._lock:
            if self._width is not None and now > self._width[1]:
                speed = abs(width - self._width[0]) / (now - self._width[1])
                # smooth the finite difference
                self._width_speed = 0.7 * self._width_speed + 0.3 * speed
            self._width = (width, now)

    # ---------- what the server reads ----------
    def latest(self) -> ArmState | None:
        """The newest state, or None before the first pose and joint state arrived. franka_ros2
        publishes no measured end-effector twist: the twist is J(q)·dq (`joint_twist`)."""
        with self._lock:
            if self._pose is None or self._joints is None:
                return None
            pos, quat, stamp, received = self._pose
            return ArmState(
                pos,
                quat,
                tcp_twist(self._joints[0], self._joints[1], pos),
                self._wrench[0].copy(),
                self._wrench[1].copy(),
                self._joints[0].copy(),
                self._joints[1].copy(),
                stamp,
                received,
            )

    def joint_names(self) -> list[str]:
        """The arm's joint names as the joint-state topic gives them (empty before the first
        message)."""
        with self._lock:
            return list(self._joint_names)

    def gripper_state(self) -> tuple[float, bool]:
        """(opening in [0, 1], 0 closed; moving). A command counts as moving for its first 0.2 s,
        before the fingers' speed shows it."""
        with self._lock:
            width = self._width[0] if self._width is not None else 0.0
            moving = (
                self._width_speed > GRIPPER_MOVING_SPEED
                or time.monotonic() - self._gripper_command_at < 0.2
            )
        return min(1.0, max(0.0, width / self.cfg.ros.gripper_max_width)), bool(moving)

    def send_target(self, pos: np.ndarray, quat: np.ndarray) -> None:
        """Publish the equilibrium pose (already clipped by the server)."""
        self._target_pub.publish(rm.pose_msg(pos, quat, time.time()))

    def _gripper_commanded(self) -> None:
        with self._lock:
            self._gripper_command_at = time.monotonic()

    # ---------- what each arm provides ----------
    def gripper(self, close: bool) -> None:
        raise NotImplementedError

    def fault(self) -> str | None:
        """The arm's own fault (reflex, user stop, controller error), or None."""
        raise NotImplementedError

    def clear_errors(self) -> Future:
        raise NotImplementedError

    def set_impedance(self, params: dict[str, float]) -> Future:
        """Parameters of the impedance node (`ros.impedance_node`); a real controller that reads
        them only when configured needs a restart."""
        node = self.cfg.ros.impedance_node
        if not self._params.services_are_ready():
            return failed(f"parameter services of {node} are not available")
        future = self._params.set_parameters(
            [Parameter(k, value=float(v)) for k, v in params.items()]
        )

        def check(response) -> str:
            refused = [r.reason for r in response.results if not r.successful]
            if refused:
                raise RuntimeError(f"{node} refused impedance: " + "; ".join(refused))
            return "impedance set"

        return chain(future, check)

    def joint_reset(self, q: np.ndarray) -> Future:
        raise NotImplementedError

    def reset_task(self) -> Future | None:
        """Place the task's objects afresh (simulation only); None where there is nothing to
        place."""
        return None

    def task_succeeded(self) -> bool | None:
        """The simulator's success signal; None on a real rig."""
        return None

    def object_pose(self) -> np.ndarray | None:
        """The task object's measured pose (xyz + quat xyzw, base frame) where the rig measures
        it (a simulator); None otherwise, as on a real rig."""
        return None

    def info(self) -> dict:
        """What `health` reports about the arm beyond the server's own state (msgpack-able):
        `gripper_up` (the gripper reports its fingers) and adapter-specific details."""
        with self._lock:
            return {"gripper_up": self._width is not None}

    def close(self) -> None:
        """Release what the adapter holds (threads, connections); the node is the server's."""


def chain(future, convert) -> Future:
    """A concurrent Future completed with `convert(result)` when `future` (rclpy's or concurrent)
    finishes."""
    out: Future = Future()

    def done(f) -> None:
        try:
            out.set_result(convert(f.result()))
        except Exception as err:  # noqa: BLE001 -- handed to whoever waits on the future
            out.set_exception(err)

    future.add_done_callback(done)
    return out


def failed(message: str) -> Future:
    """A Future that already failed with `message`."""
    future: Future = Future()
    future.set_exception(RuntimeError(message))
    return future
