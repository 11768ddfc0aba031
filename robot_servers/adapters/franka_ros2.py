"""The arm behind franka_ros2 (jazzy, >= 3.3; names, QoS and recovery checked against the v3.4.0
source, unverified on hardware). libfranka (`robot.adapter: libfranka`) is the supported path for a
real FR3; this adapter needs a controller franka_ros2 does not ship (NEEDS_CONTROLLER) and says so
as a fault.

- State: the shared topics of `RosArm` (franka_robot_state_broadcaster's `current_pose`,
  `measured_joint_states`, `external_wrench_in_base_frame`: best-effort since 3.3, as
  `ros_msgs.STATE_QOS` subscribes) and franka_gripper's `~/joint_states`. tcp_vel is J(q)·dq
  (`joint_twist`): franka_ros2 publishes no measured end-effector twist.
- Faults: `robot_mode` of franka_msgs/FrankaRobotState (`~/robot_state`, 1 kHz, reliable: read
  latest-only); after an FCI error the controller manager deactivates the broadcasters too, so a
  fault usually shows as "no robot state" (ArmControl's controller error).
- Recovery, three steps in order (franka_hardware/doc/index.rst): the ErrorRecovery action
  (`/action_server/error_recovery`), `set_hardware_component_state` to re-activate
  FrankaHardwareInterface, then `switch_controller` to re-activate the impedance controller and the
  broadcasters (`ros2_control`).
- Gripper: franka_msgs Grasp / Move actions under `/franka_gripper` (franka_ros2 >= 2.0).
- Joint reset: switch to a joint_trajectory_controller (`ros.joint_reset_controller`, loaded but
  inactive: franka_bringup's controllers.yaml has none, franka_fr3_moveit_config's
  fr3_ros_controllers.yaml has fr3_arm_controller), FollowJointTrajectory, switch back.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.node import Node

from robot_servers import ros_msgs as rm
from robot_servers.adapters.base import RosArm, failed
from robot_servers.adapters.ros2_control import ControllerManager, wait
from serl.robot.hardware_config import HardwareConfig

INSTALL_HELP = (
    "the franka_ros2 adapter needs franka_msgs and controller_manager_msgs (ROS 2 packages of "
    "franka_ros2 and ros2_control, not on PyPI): source the franka_ros2 workspace "
    "(`source install/setup.bash`) before starting the server, or use robot.adapter: libfranka "
    "(the supported path) or sim. Import error: {err}"
)
EXAMPLE_CONTROLLER = "cartesian_impedance_example_controller"
EXAMPLE_TYPE = "franka_example_controllers/CartesianImpedanceExampleController"
NEEDS_CONTROLLER = (
    "the franka_ros2 adapter needs a Cartesian impedance controller {name!r} "
    "(ros.impedance_controller) that follows geometry_msgs/PoseStamped on {topic} "
    "(ros.equilibrium_pose, reliable QoS) and takes translational_stiffness, rotational_stiffness, "
    "translational_damping_ratio and rotational_damping_ratio as run-time parameters; franka_ros2 "
    "ships none (its " + EXAMPLE_CONTROLLER + " overwrites the target with a scripted motion every "
    "cycle and reads its stiffness only when configured): load such a controller or use "
    "robot.adapter: libfranka"
)
JOINT_RESET_S = 5.0  # s for the joint-space reset move (slow on purpose)
GRASP_FORCE = 40.0  # N, Franka Hand grasp force
GRIPPER_SPEED = 0.1  # m/s
RECOVERY_ACTION_S = 3.0  # s for libfranka's automaticErrorRecovery behind the action


def _import_franka() -> SimpleNamespace:
    try:
        import controller_manager_msgs.srv  # noqa: F401
        from franka_msgs.action import ErrorRecovery, Grasp, Move
        from franka_msgs.msg import FrankaRobotState
    except ImportError as err:
        raise ImportError(INSTALL_HELP.format(err=err)) from err
    return SimpleNamespace(recovery=ErrorRecovery, grasp=Grasp, move=Move, state=FrankaRobotState)


def controller_problem(cfg: HardwareConfig, controllers: dict[str, tuple[str, str]],
                       subscribers: list[str]) -> str | None:
    """Why the impedance controller cannot follow the server's targets, or None. `controllers`:
    name -> (state, type) from list_controllers; `subscribers`: node names subscribed to
    `ros.equilibrium_pose`."""
    ros = cfg.ros
    needs = NEEDS_CONTROLLER.format(name=ros.impedance_controller, topic=ros.equilibrium_pose)
    if ros.impedance_controller not in controllers:
        return f"controller {ros.impedance_controller!r} is not loaded; {needs}"
    state, kind = controllers[ros.impedance_controller]
    if kind == EXAMPLE_TYPE:
        return f"controller {ros.impedance_controller!r} is {kind}; {needs}"
    if ros.impedance_controller not in subscribers:
        return f"{ros.impedance_controller!r} does not subscribe to {ros.equilibrium_pose}; {needs}"
    if state != "active":
        return f"controller {ros.impedance_controller!r} is {state}, not active"
    return None


class FrankaRos2Adapter(RosArm):
    def __init__(self, node: Node, cfg: HardwareConfig):
        # before anything subscribes: fail naming what to install
        self._types = t = _import_franka()
        ros = cfg.ros
        if EXAMPLE_CONTROLLER in (ros.impedance_controller, ros.impedance_node.rsplit("/", 1)[-1]):
            raise ValueError(NEEDS_CONTROLLER.format(name=ros.impedance_controller,
                                                     topic=ros.equilibrium_pose))
        super().__init__(node, cfg)
        self._fault_lock = threading.Lock()
        self._mode_fault: str | None = None
        self._problem: str | None = None  # controller_problem(), from the worker
        self._fault_modes = {t.state.ROBOT_MODE_REFLEX: "reflex",
                             t.state.ROBOT_MODE_USER_STOPPED: "user_stop",
                             t.state.ROBOT_MODE_AUTOMATIC_ERROR_RECOVERY: "error recovery"}
        node.create_subscription(t.state, ros.robot_mode, self._on_robot_state, rm.BROADCASTER_QOS)
        self._grasp = ActionClient(node, t.grasp, f"{ros.gripper_namespace}/grasp")
        self._move = ActionClient(node, t.move, f"{ros.gripper_namespace}/move")
        self._recovery = ActionClient(node, t.recovery, ros.error_recovery)
        self._cm = ControllerManager(node, cfg)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="franka-ros2")
        self._closed = threading.Event()
        self._joint_reset: _JointReset | None = None
        # its own thread: recovery and joint resets need not queue behind a slow start
        threading.Thread(target=self._check_controller, args=(30.0,), name="controller-check",
                         daemon=True).start()

    # ---------- state and faults ----------
    def _on_robot_state(self, msg) -> None:
        mode = self._fault_modes.get(int(msg.robot_mode))
        if mode is not None:
            errors = msg.current_errors
            raised = [k for k in errors.get_fields_and_field_types() if getattr(errors, k) is True]
            mode = f"{mode} ({', '.join(raised)})" if raised else mode
        with self._fault_lock:
            self._mode_fault = mode

    def fault(self) -> str | None:
        with self._fault_lock:
            return self._mode_fault or self._problem

    def _check_controller(self, patience_s: float) -> None:
        """Set `_problem` from list_controllers and the equilibrium topic's subscribers, retrying
        while the controller manager is not up (the executor may not be spinning yet)."""
        deadline = time.monotonic() + patience_s
        while True:
            try:
                controllers = self._cm.controllers()
                break
            except (RuntimeError, TimeoutError):
                # no controller manager: no robot state either, which already faults
                if time.monotonic() > deadline or self._closed.is_set():
                    return
        subscribers = [i.node_name for i in
                       self.node.get_subscriptions_info_by_topic(self.cfg.ros.equilibrium_pose)]
        with self._fault_lock:
            self._problem = controller_problem(self.cfg, controllers, subscribers)

    # ---------- commands ----------
    def gripper(self, close: bool) -> None:
        t, ros = self._types, self.cfg.ros
        self._gripper_commanded()
        # grasp whatever is between the fingers: any width from fully closed to fully open succeeds
        if close:
            goal = t.grasp.Goal(width=0.0, speed=GRIPPER_SPEED, force=GRASP_FORCE)
            goal.epsilon.inner, goal.epsilon.outer = 0.0, ros.gripper_max_width
            client, name = self._grasp, "grasp"
        else:
            goal = t.move.Goal(width=ros.gripper_max_width, speed=GRIPPER_SPEED)
            client, name = self._move, "move"
        if not client.server_is_ready():
            raise RuntimeError(
                f"gripper action server {ros.gripper_namespace}/{name} is not available"
            )
        client.send_goal_async(goal)  # asynchronous: progress shows in the finger joint states

    def clear_errors(self) -> Future:
        with self._fault_lock:
            self._mode_fault = None  # a fault read after recovery comes from a fresh robot state
        return self._worker.submit(self._recover)

    def _recover(self) -> str:
        """The three steps of franka_hardware's recovery after an FCI error, then the controller
        check again."""
        if not self._recovery.wait_for_server(timeout_sec=1.0):
            raise RuntimeError(f"error recovery action {self.cfg.ros.error_recovery} is not up")
        handle = wait(self._recovery.send_goal_async(self._types.recovery.Goal()), 2.0,
                      "error recovery goal")
        if not handle.accepted:
            raise RuntimeError("error recovery goal rejected")
        outcome = wait(handle.get_result_async(), RECOVERY_ACTION_S, "error recovery")
        if outcome.status != GoalStatus.STATUS_SUCCEEDED:
            raise RuntimeError("automatic error recovery failed (see the ros2_control_node log)")
        hardware = self._cm.activate_hardware()
        listed = self._cm.controllers()
        wake = [name for name, (state, kind) in listed.items() if state == "inactive"
                and (name == self.cfg.ros.impedance_controller or kind.endswith("Broadcaster"))]
        if wake:
            self._cm.switch(wake, [])
        self._check_controller(0.0)
        return f"errors cleared; re-activated {hardware + wake or 'nothing (all active)'}"

    def joint_reset(self, q: np.ndarray) -> Future:
        try:
            from control_msgs.action import FollowJointTrajectory
            from trajectory_msgs.msg import JointTrajectoryPoint
        except ImportError as err:
            return failed(f"joint reset needs control_msgs and trajectory_msgs: {err}")
        if self._joint_reset is None:
            self._joint_reset = _JointReset(self.node, self.cfg, self._cm, FollowJointTrajectory,
                                            JointTrajectoryPoint)
        return self._worker.submit(
            self._joint_reset.run, np.asarray(q, dtype=np.float64), self.joint_names()
        )

    def info(self) -> dict:
        with self._fault_lock:
            problem = self._problem
        actions_up = self._grasp.server_is_ready() and self._move.server_is_ready()
        return {**super().info(), "controller_problem": problem, "gripper_actions_up": actions_up}

    def close(self) -> None:
        self._closed.set()
        self._worker.shutdown(wait=False, cancel_futures=True)


class _JointReset:
    """controller_manager switch -> FollowJointTrajectory to one point -> switch back, blocking
    (worker thread)."""

    def __init__(self, node: Node, cfg: HardwareConfig, cm: ControllerManager, trajectory_type,
                 point_type):
        ros = cfg.ros
        self.cfg, self.cm = cfg, cm
        self.trajectory_type, self.point_type = trajectory_type, point_type
        self.trajectory = ActionClient(node, trajectory_type,
                                       f"/{ros.joint_reset_controller}/follow_joint_trajectory")

    def run(self, q: np.ndarray, names: list[str]) -> str:
        ros = self.cfg.ros
        if len(names) != 7:
            raise RuntimeError("no joint names seen on the joint-state topic yet")
        self.cm.switch([ros.joint_reset_controller], [ros.impedance_controller])
        try:
            goal = self.trajectory_type.Goal()
            goal.trajectory.joint_names = list(names)
            point = self.point_type(positions=[float(v) for v in q])
            point.time_from_start.sec = int(JOINT_RESET_S)
            goal.trajectory.points = [point]
            if not self.trajectory.wait_for_server(timeout_sec=2.0):
                raise RuntimeError(
                    f"{ros.joint_reset_controller}/follow_joint_trajectory is not available"
                )
            handle = wait(self.trajectory.send_goal_async(goal), 5.0, "trajectory goal")
            if not handle.accepted:
                raise RuntimeError("joint reset trajectory rejected")
            wait(handle.get_result_async(), JOINT_RESET_S + 10.0, "joint reset trajectory")
        finally:
            self.cm.switch([ros.impedance_controller], [ros.joint_reset_controller])
        return "joints at reset configuration"
