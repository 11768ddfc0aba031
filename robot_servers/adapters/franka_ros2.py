"""The arm behind franka_ros2 (FR3 + Franka Hand): the shared state topics plus franka_msgs' robot state for faults,
the gripper's Grasp/Move actions, the ErrorRecovery action and the impedance controller's parameters.

Assumed (from franka_ros2's public documentation, unverified on hardware until a lab confirms it):
franka_msgs provides msg FrankaRobotState (with `robot_mode`), action ErrorRecovery (empty goal), and the gripper
actions Grasp (width, epsilon inner/outer, speed, force) and Move (width, speed) under the gripper's namespace
(e.g. /fr3_gripper/grasp, /fr3_gripper/move). All names come from the rig file's `ros` section.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

import numpy as np
from rclpy.action import ActionClient
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

from robot_servers import ros_msgs as rm
from robot_servers.adapters.base import RosArm, chain
from serl.robot.hardware_config import HardwareConfig

INSTALL_HELP = (
    "the franka_ros2 adapter needs the franka_msgs Python package (ROS 2 franka_ros2, built for the ROS "
    "distribution this server runs on): source the franka_ros2 workspace (`source install/setup.bash`) before "
    "starting the server, or use robot.adapter: sim for the simulated driver. Import error: {err}")
GRASP_FORCE = 40.0  # N, Franka Hand grasp force
GRIPPER_SPEED = 0.1  # m/s
# FrankaRobotState.robot_mode values that mean the arm stopped and needs recovery.
FAULT_MODES = {4: "reflex", 5: "user_stop", 6: "automatic error recovery"}


def _import_franka():
    try:
        from franka_msgs.action import ErrorRecovery, Grasp, Move
        from franka_msgs.msg import FrankaRobotState
    except ImportError as err:
        raise ImportError(INSTALL_HELP.format(err=err)) from err
    return ErrorRecovery, Grasp, Move, FrankaRobotState


class FrankaRos2Adapter(RosArm):
    def __init__(self, node: Node, cfg: HardwareConfig):
        self._types = _import_franka()  # before anything subscribes: fail naming what to install
        super().__init__(node, cfg)
        error_recovery, grasp, move, robot_state = self._types
        ros = cfg.ros
        self._fault_lock = threading.Lock()
        self._fault: str | None = None
        node.create_subscription(robot_state, ros.robot_mode, self._on_robot_state, rm.STATE_QOS)
        self._grasp = ActionClient(node, grasp, f"{ros.gripper_namespace}/grasp")
        self._move = ActionClient(node, move, f"{ros.gripper_namespace}/move")
        self._recovery = ActionClient(node, error_recovery, ros.error_recovery)
        self._params = AsyncParameterClient(node, ros.impedance_node)

    def _on_robot_state(self, msg) -> None:
        mode = FAULT_MODES.get(int(getattr(msg, "robot_mode", 0)))
        with self._fault_lock:
            self._fault = mode

    def fault(self) -> str | None:
        with self._fault_lock:
            return self._fault

    def gripper(self, close: bool) -> None:
        _, grasp, move, _ = self._types
        self._gripper_commanded()
        name = f"{self.cfg.ros.gripper_namespace}/{'grasp' if close else 'move'}"
        if close:  # grasp whatever is between the fingers: any width from fully closed to fully open succeeds
            goal = grasp.Goal(width=0.0, speed=GRIPPER_SPEED, force=GRASP_FORCE)
            goal.epsilon.inner, goal.epsilon.outer = 0.0, self.cfg.ros.gripper_max_width
            client = self._grasp
        else:
            goal, client = move.Goal(width=self.cfg.ros.gripper_max_width, speed=GRIPPER_SPEED), self._move
        if not client.server_is_ready():
            raise RuntimeError(f"gripper action server {name} is not available")
        client.send_goal_async(goal)  # asynchronous: progress shows in the finger joint states

    def clear_errors(self) -> Future:
        error_recovery = self._types[0]
        if not self._recovery.server_is_ready():
            out: Future = Future()
            out.set_exception(RuntimeError(f"error recovery action {self.cfg.ros.error_recovery} is not available"))
            return out
        result: Future = Future()

        def accepted(goal_future) -> None:
            try:
                handle = goal_future.result()
                if not handle.accepted:
                    raise RuntimeError("error recovery goal rejected")
            except Exception as err:  # noqa: BLE001 -- handed to whoever waits on the future
                result.set_exception(err)
                return
            chain(handle.get_result_async(), lambda _: "errors cleared").add_done_callback(
                lambda f: result.set_result(f.result()) if f.exception() is None else result.set_exception(
                    f.exception()))

        self._recovery.send_goal_async(error_recovery.Goal()).add_done_callback(accepted)
        return result

    def set_impedance(self, params: dict[str, float]) -> Future:
        # Parameters of the controller node; a controller that reads them only when configured needs a restart.
        future = self._params.set_parameters([Parameter(k, value=float(v)) for k, v in params.items()])

        def check(response) -> str:
            refused = [r.reason for r in response.results if not r.successful]
            if refused:
                raise RuntimeError("controller refused impedance: " + "; ".join(refused))
            return "impedance set"

        return chain(future, check)

    def joint_reset(self, q: np.ndarray) -> Future:
        out: Future = Future()
        out.set_exception(NotImplementedError(
            "joint reset on franka_ros2 needs a switch to a joint position controller, which this adapter does "
            "not do yet; set reset.joint_reset to null or move the arm to its posture with the pilot"))
        return out
