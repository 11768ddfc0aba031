"""The arm behind `robot_servers/sim_franka_driver.py`: the shared state topics plus the simulated driver's gripper
command topic, robot-mode topic, std_srvs/Trigger services (clear errors, joint reset, task reset) and impedance
parameters."""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future

import numpy as np
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger

from robot_servers import ros_msgs as rm
from robot_servers.adapters.base import RosArm, chain
from serl.robot.hardware_config import HardwareConfig


class SimArmAdapter(RosArm):
    def __init__(self, node: Node, cfg: HardwareConfig):
        super().__init__(node, cfg)
        ros, qos = cfg.ros, rm.STATE_QOS
        self._mode_lock = threading.Lock()
        self._mode: str | None = None
        self._succeed: bool | None = None
        self._gripper_pub = node.create_publisher(Float64, f"{ros.gripper_namespace}/command", qos)
        node.create_subscription(String, ros.robot_mode, self._on_mode, qos)
        node.create_subscription(String, f"{ros.sim_namespace}/task_status", self._on_task, qos)
        self._services = {name: node.create_client(Trigger, topic) for name, topic in (
            ("clear_errors", ros.error_recovery), ("joint_reset", f"{ros.sim_namespace}/joint_reset"),
            ("reset_task", f"{ros.sim_namespace}/reset_task"))}
        self._params = AsyncParameterClient(node, ros.impedance_node)

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
        """Drop the last robot mode seen, so a fault read after recovery comes from a fresh message."""
        with self._mode_lock:
            self._mode = None

    def clear_errors(self) -> Future:
        return self._trigger("clear_errors")

    def joint_reset(self, q: np.ndarray) -> Future:
        # The driver moves to its rig file's reset.joint_reset, the same file the server reads q from.
        return self._trigger("joint_reset")

    def reset_task(self) -> Future:
        return chain_json(self._trigger("reset_task"))

    def task_succeeded(self) -> bool | None:
        with self._mode_lock:
            return self._succeed

    def set_impedance(self, params: dict[str, float]) -> Future:
        if not self._params.services_are_ready():
            return _failed(f"parameter services of {self.cfg.ros.impedance_node} are not available")
        future = self._params.set_parameters([Parameter(k, value=float(v)) for k, v in params.items()])

        def check(response) -> str:
            refused = [r.reason for r in response.results if not r.successful]
            if refused:
                raise RuntimeError("driver refused impedance: " + "; ".join(refused))
            return "impedance set"

        return chain(future, check)

    def _trigger(self, name: str) -> Future:
        client = self._services[name]
        if not client.service_is_ready():
            return _failed(f"simulated driver service {client.srv_name} is not available")

        def check(response) -> str:
            if not response.success:
                raise RuntimeError(f"{client.srv_name}: {response.message}")
            return response.message

        return chain(client.call_async(Trigger.Request()), check)


def chain_json(future: Future) -> Future:
    out: Future = Future()

    def done(f: Future) -> None:
        try:
            out.set_result(json.loads(f.result()))
        except Exception as err:  # noqa: BLE001 -- handed to whoever waits on the future
            out.set_exception(err)

    future.add_done_callback(done)
    return out


def _failed(message: str) -> Future:
    future: Future = Future()
    future.set_exception(RuntimeError(message))
    return future
