"""The arm behind `robot_servers/sim_franka_driver.py`: the shared state topics (on franka_ros2's
names and QoS) plus the simulated driver's own interface under `ros.sim_namespace`: a gripper
command topic, the robot mode and task status, std_srvs/Trigger services (clear errors, joint reset,
task reset). Impedance: the driver's node parameters. tcp_vel is J(q)·dq, as on franka_ros2."""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger

from robot_servers import ros_msgs as rm
from robot_servers.adapters.base import RosArm, chain, failed
from serl.robot.hardware_config import HardwareConfig


def gripper_command_topic(cfg: HardwareConfig) -> str:
    """std_msgs/Float64 opening in [0, 1] the simulated driver's gripper follows (franka_gripper
    takes actions instead, with franka_msgs types)."""
    return f"{cfg.ros.sim_namespace}/gripper_command"


class SimArmAdapter(RosArm):
    def __init__(self, node: Node, cfg: HardwareConfig):
        super().__init__(node, cfg)
        ros, qos = cfg.ros, rm.RELIABLE_QOS  # the driver's own topics: no message is dropped
        self._mode_lock = threading.Lock()
        self._mode: str | None = None
        self._succeed: bool | None = None
        self._gripper_pub = node.create_publisher(Float64, gripper_command_topic(cfg), qos)
        node.create_subscription(String, ros.robot_mode, self._on_mode, qos)
        node.create_subscription(String, f"{ros.sim_namespace}/task_status", self._on_task, qos)
        self._services = {
            name: node.create_client(Trigger, topic)
            for name, topic in (
                ("clear_errors", ros.error_recovery),
                ("joint_reset", f"{ros.sim_namespace}/joint_reset"),
                ("reset_task", f"{ros.sim_namespace}/reset_task"),
            )
        }

    def _on_mode(self, msg: String) -> None:
        with self._mode_lock:
            self._mode = msg.data

    def _on_task(self, msg: String) -> None:
        try:
            succeed = bool(json.loads(msg.data)["succeed"])
        except (ValueError, KeyError, TypeError):
            return
        with self._mode_lock:
            self._succeed = succeed

    def gripper(self, close: bool) -> None:
        self._gripper_commanded()
        self._gripper_pub.publish(Float64(data=0.0 if close else 1.0))

    def fault(self) -> str | None:
        with self._mode_lock:
            return None if self._mode in (None, "ok") else self._mode

    def forget_mode(self) -> None:
        """Drop the last robot mode seen, so a fault read after recovery comes from a fresh
        message."""
        with self._mode_lock:
            self._mode = None

    def clear_errors(self) -> Future:
        return self._trigger("clear_errors")

    def joint_reset(self, q: np.ndarray) -> Future:
        # The driver moves to its rig file's reset.joint_reset, the same file the server reads q
        # from.
        return self._trigger("joint_reset")

    def reset_task(self) -> Future:
        return chain(self._trigger("reset_task"), json.loads)

    def task_succeeded(self) -> bool | None:
        with self._mode_lock:
            return self._succeed

    def _trigger(self, name: str) -> Future:
        client = self._services[name]
        if not client.service_is_ready():
            return failed(f"simulated driver service {client.srv_name} is not available")

        def check(response) -> str:
            if not response.success:
                raise RuntimeError(f"{client.srv_name}: {response.message}")
            return response.message

        return chain(client.call_async(Trigger.Request()), check)

