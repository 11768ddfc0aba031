"""What the libfranka adapter adds on a simulated rig (franky-sim behind
robot_servers/franky_sim_rig.py), none of which a real FR3 has: the task's status (success and the
cube's pose, from the rig's `<ros.sim_namespace>/task_status`), the task reset (its `reset_task`
service), and the test-only fault-injection services for the faults franky-sim cannot produce.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from robot_servers import ros_msgs as rm
from robot_servers.adapters.base import chain, failed
from serl.robot.hardware_config import HardwareConfig

# A task status older than this is not reported (the rig publishes at TASK_STATUS_HZ).
TASK_STATUS_MAX_AGE_S = 0.5
# What libfranka says for the faults franky-sim cannot produce (robot_impl.h), and the robot mode.
INJECTED = {
    "reflex": ("ControlException: libfranka: Move command aborted: motion aborted by reflex! "
               '["cartesian_reflex"] (injected)', "Reflex"),
    "user_stop": ("ControlException: libfranka: Move command aborted: User Stop pressed! "
                  "(injected)", "UserStopped"),
}


class RigTask:
    """The simulated rig's task on `node`: its latest status and its reset service."""

    def __init__(self, node: Node, cfg: HardwareConfig):
        ns = cfg.ros.sim_namespace
        self._lock = threading.Lock()
        self._status: tuple[dict, float] | None = None  # (message, monotonic time received)
        node.create_subscription(String, f"{ns}/task_status", self._on_status, rm.RELIABLE_QOS)
        self._reset = node.create_client(Trigger, f"{ns}/reset_task")

    def _on_status(self, msg: String) -> None:
        try:
            status = json.loads(msg.data)
        except ValueError:
            return
        with self._lock:
            self._status = (status, time.monotonic())

    def _fresh(self) -> dict:
        with self._lock:
            status = self._status
        if status is None or time.monotonic() - status[1] > TASK_STATUS_MAX_AGE_S:
            return {}
        return status[0]

    def succeeded(self) -> bool | None:
        succeed = self._fresh().get("succeed")
        return None if succeed is None else bool(succeed)

    def object_pose(self) -> np.ndarray | None:
        """The cube's pose (xyz + quaternion xyzw, base frame), None without a fresh status."""
        pose = self._fresh().get("object_pose")
        return None if pose is None else np.asarray(pose, dtype=np.float64)

    def reset(self) -> Future:
        """Place the cube afresh; the result is the placement ({"object", "pos", "quat"})."""
        if not self._reset.service_is_ready():
            return failed(f"franky-sim rig service {self._reset.srv_name} is not available")

        def check(response) -> dict:
            if not response.success:
                raise RuntimeError(f"{self._reset.srv_name}: {response.message}")
            return json.loads(response.message)

        return chain(self._reset.call_async(Trigger.Request()), check)


def serve_fault_injection(node: Node, cfg: HardwareConfig, inject: Callable[[str], str]) -> None:
    """std_srvs/Trigger `<ros.sim_namespace>/inject_reflex|inject_user_stop` calling
    `inject(kind)` (the adapter's one fault-injection seam); tests only."""
    ns = cfg.ros.sim_namespace
    for kind in INJECTED:
        node.create_service(Trigger, f"{ns}/inject_{kind}", _injector(inject, kind))


def _injector(inject: Callable[[str], str], kind: str):
    def handle(_request, response):
        response.message, response.success = inject(kind), True
        return response

    return handle
