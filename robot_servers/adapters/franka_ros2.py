"""The arm behind franka_ros2 (FR3 + Franka Hand): the shared state topics plus franka_msgs' robot state for faults,
the gripper's Grasp/Move actions, the ErrorRecovery action and the impedance controller's parameters.

Assumed (from franka_ros2's public documentation, unverified on hardware until a lab confirms it):
franka_msgs provides msg FrankaRobotState (with `robot_mode`), action ErrorRecovery (empty goal), and the gripper
actions Grasp (width, epsilon inner/outer, speed, force) and Move (width, speed) under the gripper's namespace
(e.g. /fr3_gripper/grasp, /fr3_gripper/move). A joint reset switches controllers through controller_manager's
switch_controller service to a joint trajectory controller (control_msgs FollowJointTrajectory) and back. All names
come from the rig file's `ros` section.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from rclpy.action import ActionClient
from rclpy.node import Node

from robot_servers import ros_msgs as rm
from robot_servers.adapters.base import RosArm, chain, failed
from serl.robot.hardware_config import HardwareConfig

INSTALL_HELP = (
    "the franka_ros2 adapter needs the franka_msgs Python package (ROS 2 franka_ros2, built for the ROS "
    "distribution this server runs on): source the franka_ros2 workspace (`source install/setup.bash`) before "
    "starting the server, or use robot.adapter: sim for the simulated driver. Import error: {err}")
JOINT_RESET_S = 5.0  # s for the joint-space reset move (slow on purpose)
GRASP_FORCE = 40.0  # N, Franka Hand grasp force
GRIPPER_SPEED = 0.1  # m/s
# FrankaRobotState.robot_mode values (libfranka's RobotMode order) that mean the arm stopped and needs recovery.
FAULT_MODES = {4: "reflex", 5: "user_stop", 6: "automatic error recovery"}
FAULT_MODE_CONSTANTS = {"ROBOT_MODE_REFLEX": 4, "ROBOT_MODE_USER_STOPPED": 5, "ROBOT_MODE_AUTOMATIC_ERROR_RECOVERY": 6}


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
        # The message's own constants where it defines them, else libfranka's numbering.
        self._fault_modes = {int(getattr(robot_state, name, value)): FAULT_MODES[value]
                             for name, value in FAULT_MODE_CONSTANTS.items()}
        node.create_subscription(robot_state, ros.robot_mode, self._on_robot_state, rm.STATE_QOS)
        self._grasp = ActionClient(node, grasp, f"{ros.gripper_namespace}/grasp")
        self._move = ActionClient(node, move, f"{ros.gripper_namespace}/move")
        self._recovery = ActionClient(node, error_recovery, ros.error_recovery)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="joint-reset")
        self._joint_reset: _JointReset | None = None

    def _on_robot_state(self, msg) -> None:
        mode = self._fault_modes.get(int(getattr(msg, "robot_mode", 0)))
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
            return failed(f"error recovery action {self.cfg.ros.error_recovery} is not available")
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

    def joint_reset(self, q: np.ndarray) -> Future:
        """Switch to the joint trajectory controller, move to `q`, switch back (in a worker thread: it waits on
        futures the server's executor completes)."""
        try:
            from control_msgs.action import FollowJointTrajectory
            from controller_manager_msgs.srv import SwitchController
        except ImportError as err:
            return failed(f"joint reset needs the control_msgs and controller_manager_msgs packages (ros2_control): "
                          f"{err}")
        if self._joint_reset is None:
            self._joint_reset = _JointReset(self.node, self.cfg, SwitchController, FollowJointTrajectory)
        return self._worker.submit(self._joint_reset.run, np.asarray(q, dtype=np.float64), self.joint_names())


class _JointReset:
    """controller_manager switch -> FollowJointTrajectory to one point -> switch back, blocking (worker thread)."""

    def __init__(self, node: Node, cfg: HardwareConfig, switch_type, trajectory_type):
        ros = cfg.ros
        self.cfg, self.switch_type, self.trajectory_type = cfg, switch_type, trajectory_type
        self.switch = node.create_client(switch_type, f"{ros.controller_manager}/switch_controller")
        self.trajectory = ActionClient(node, trajectory_type,
                                       f"/{ros.joint_reset_controller}/follow_joint_trajectory")

    def run(self, q: np.ndarray, names: list[str]) -> str:
        ros = self.cfg.ros
        if len(names) != 7:
            raise RuntimeError("no joint names seen on the joint-state topic yet")
        self._switch([ros.joint_reset_controller], [ros.impedance_controller])
        try:
            goal = self.trajectory_type.Goal()
            goal.trajectory.joint_names = list(names)
            point = _trajectory_point()
            point.positions = [float(v) for v in q]
            point.time_from_start.sec = int(JOINT_RESET_S)
            goal.trajectory.points = [point]
            if not self.trajectory.wait_for_server(timeout_sec=2.0):
                raise RuntimeError(f"{ros.joint_reset_controller}/follow_joint_trajectory is not available")
            handle = _wait(self.trajectory.send_goal_async(goal), 5.0, "trajectory goal")
            if not handle.accepted:
                raise RuntimeError("joint reset trajectory rejected")
            _wait(handle.get_result_async(), JOINT_RESET_S + 10.0, "joint reset trajectory")
        finally:
            self._switch([ros.impedance_controller], [ros.joint_reset_controller])
        return "joints at reset configuration"

    def _switch(self, activate: list[str], deactivate: list[str]) -> None:
        if not self.switch.wait_for_service(timeout_sec=2.0):
            raise RuntimeError(f"{self.switch.srv_name} is not available")
        request = self.switch_type.Request(activate_controllers=activate, deactivate_controllers=deactivate,
                                           strictness=self.switch_type.Request.STRICT)
        response = _wait(self.switch.call_async(request), 5.0, "controller switch")
        if not response.ok:
            raise RuntimeError(f"controller_manager refused to activate {activate} / deactivate {deactivate}")


def _trajectory_point():
    from trajectory_msgs.msg import JointTrajectoryPoint

    return JointTrajectoryPoint()


def _wait(future, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not future.done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not finish within {timeout_s:.0f} s")
        time.sleep(0.01)
    return future.result()
