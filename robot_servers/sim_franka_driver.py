"""`sim_franka_driver`: an rclpy node that stands in for franka_ros2 with the MuJoCo Panda.

franka_ros2's names (from the rig file's `ros` section) and QoS wherever standard message types
allow: publishes the state broadcaster's current_pose, measured_joint_states and
external_wrench_in_base_frame best-effort (`ros_msgs.BROADCASTER_QOS`, as franka_ros2 >= 3.3) and
the gripper's joint_states reliable, at the state rate (>= 100 Hz); subscribes to the equilibrium
pose reliable (as franka_ros2's controllers, SystemDefaultsQoS). Like franka_ros2 it publishes no
measured TCP twist. What franka_ros2 does with franka_msgs types (FrankaRobotState, the
ErrorRecovery and gripper actions), which PyPI does not carry, the driver does with std types
under `ros.sim_namespace`: gripper_command (Float64 opening), robot mode (`ros.robot_mode`,
String "ok" or the fault), task_status (String JSON {"succeed", "stamp"}) and std_srvs/Trigger
services inject_reflex, inject_user_stop, clear errors (`ros.error_recovery`), reset_task,
joint_reset. The `ros` cameras of the rig file: rgb8 sensor_msgs/Image at the image rate (>= 10
Hz) stamped with their capture time. Impedance: the node's parameters translational_stiffness,
rotational_stiffness, translational_damping_ratio, rotational_damping_ratio.

Physics runs in real time in one thread (which also renders, as an EGL context belongs to its
thread); ROS callbacks run in single-threaded executors and meet it at `SimArm`'s lock. (rclpy's
MultiThreadedExecutor is avoided: while its pool is busy it resubmits the queued callbacks in a busy
loop that holds the GIL and starves the physics thread for seconds.) Stamps are the ROS clock (wall
time). A `StallWatch` logs every thread's stack when the physics loop or the executor stops for more
than 0.5 s.

    python -m robot_servers.sim_franka_driver hardware_configs/sim_panda.yaml
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, String
from std_srvs.srv import Trigger

from robot_servers import ros_msgs as rm
from robot_servers.adapters.sim import gripper_command_topic
from robot_servers.sim_arm import ArmReading, SimArm
from robot_servers.stall_watch import StallWatch
from serl.envs.sim.render import CameraRenderer
from serl.robot.hardware_config import HardwareConfig, load_hardware_config
from serl.robot.impedance_config import IMPEDANCE_KEYS

ARM_JOINTS = [f"fr3_joint{i + 1}" for i in range(7)]
FINGER_JOINTS = ["fr3_finger_joint1", "fr3_finger_joint2"]
SIM_CAMERAS = ("front", "wrist")


class SimFrankaDriver(Node):
    def __init__(self, cfg: HardwareConfig, context: rclpy.Context | None = None):
        super().__init__("sim_franka_driver", context=context)
        self.cfg, self.arm = cfg, SimArm(cfg)
        ros = cfg.ros
        self.cameras = {name: cam for name, cam in cfg.cameras.items() if cam.type == "ros"}
        unknown = set(self.cameras) - set(SIM_CAMERAS)
        if unknown:
            raise ValueError(
                f"cameras {sorted(unknown)} do not exist in the simulation (it has {SIM_CAMERAS})"
            )
        state, reliable = rm.BROADCASTER_QOS, rm.RELIABLE_QOS
        self.pub_pose = self.create_publisher(PoseStamped, ros.current_pose, state)
        self.pub_wrench = self.create_publisher(rm.WrenchStamped, ros.external_wrench, state)
        self.pub_joints = self.create_publisher(JointState, ros.joint_states, state)
        self.pub_fingers = self.create_publisher(JointState, ros.gripper_joint_states, reliable)
        self.pub_mode = self.create_publisher(String, ros.robot_mode, reliable)
        self.pub_task = self.create_publisher(String, f"{ros.sim_namespace}/task_status", reliable)
        self.pub_images = {
            n: self.create_publisher(rm.Image, c.topic, rm.IMAGE_QOS)
            for n, c in self.cameras.items()
        }
        self.create_subscription(PoseStamped, ros.equilibrium_pose, self._on_equilibrium, reliable)
        self.create_subscription(Float64, gripper_command_topic(cfg), self._on_gripper, reliable)
        ns = ros.sim_namespace
        services = {f"{ns}/inject_reflex": lambda: self._fault("reflex"),
                    f"{ns}/inject_user_stop": lambda: self._fault("user_stop"),
                    ros.error_recovery: self._clear, f"{ns}/reset_task": self._reset_task}
        for name, fn in services.items():
            self.create_service(Trigger, name, self._trigger(fn))
        # The joint reset answers when the move is done (seconds): it has a node and executor thread
        # of its own, so the topics and the other services keep being served meanwhile.
        self.mover = Node("sim_franka_joint_mover", context=self.context)
        self.mover.create_service(Trigger, f"{ns}/joint_reset", self._trigger(self._joint_reset))
        for key, value in cfg.impedance.defaults().items():
            self.declare_parameter(key, value)
        self.add_on_set_parameters_callback(self._on_parameters)
        self._stop = threading.Event()
        self.physics_watch = StallWatch("physics loop")
        self._physics = threading.Thread(target=self._physics_loop, name="sim-physics", daemon=True)

    def start(self) -> None:
        self._physics.start()
        self.physics_watch.start()

    def stop(self) -> None:
        self.physics_watch.stop()
        self._stop.set()
        self._physics.join(timeout=5)

    # ---------- callbacks ----------
    def _on_equilibrium(self, msg: PoseStamped) -> None:
        self.arm.set_equilibrium(*rm.pose_from_msg(msg))

    def _on_gripper(self, msg: Float64) -> None:
        if np.isfinite(msg.data):
            self.arm.set_gripper(min(1.0, max(0.0, msg.data)))

    def _trigger(self, fn):
        def handle(_request, response):
            try:
                response.message = fn() or ""
                response.success = True
            # reported to the caller, the driver keeps running
            except Exception as err:  # noqa: BLE001
                response.success, response.message = False, f"{type(err).__name__}: {err}"
            return response

        return handle

    def _fault(self, reason: str) -> str:
        self.arm.inject_fault(reason)
        self._publish_mode(reason)
        return reason

    def _clear(self) -> str:
        self.arm.clear_errors()
        self._publish_mode(None)
        return "errors cleared"

    def _reset_task(self) -> str:
        return json.dumps(self.arm.reset_task())

    def _joint_reset(self) -> str:
        if self.cfg.reset.joint_reset is None:
            raise ValueError("the rig file has no reset.joint_reset configuration")
        done = self.arm.start_joint_move(np.asarray(self.cfg.reset.joint_reset), time.monotonic())
        deadline = time.monotonic() + 30.0
        while not done.wait(timeout=0.1):
            if self._stop.is_set():
                raise RuntimeError("the driver is shutting down")
            if time.monotonic() > deadline:
                raise TimeoutError("joint reset did not finish within 30 s")
        return "joints at reset configuration"

    def _on_parameters(self, params) -> SetParametersResult:
        changes = {}
        for p in params:
            if p.name not in IMPEDANCE_KEYS:
                continue
            value = p.value
            if not isinstance(value, int | float) or not np.isfinite(value) or value <= 0:
                return SetParametersResult(
                    successful=False, reason=f"{p.name} must be a positive number"
                )
            changes[p.name] = float(value)
        if changes:
            self.arm.set_gains(**changes)
        return SetParametersResult(successful=True)

    # ---------- the physics thread ----------
    def _physics_loop(self) -> None:
        sim_cfg = self.cfg.sim
        period = 1.0 / sim_cfg.state_rate_hz
        image_every = max(1, round(sim_cfg.state_rate_hz / sim_cfg.image_rate_hz))
        size = (
            max(max(c.capture_size or c.size) for c in self.cameras.values()) if self.cameras else 0
        )
        renderer = (
            CameraRenderer(self.arm.sim.model, tuple(self.cameras), size) if self.cameras else None
        )
        tick, deadline = 0, time.monotonic()
        try:
            while not self._stop.is_set():
                self.arm.advance(period, time.monotonic())
                stamp = time.time()
                reading = self.arm.read()
                self._publish_state(reading, stamp)
                if tick % image_every == 0:
                    self._publish_slow(reading, renderer, stamp)
                tick += 1
                self.physics_watch.beat()
                deadline += period
                delay = deadline - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -0.1:  # far behind (CPU starved): do not run fast to catch up
                    deadline = time.monotonic()
        finally:
            if renderer is not None:
                renderer.close()

    def _publish_state(self, r: ArmReading, stamp: float) -> None:
        self.pub_pose.publish(rm.pose_msg(r.pos, r.quat, stamp))
        self.pub_wrench.publish(rm.wrench_msg(r.force, r.torque, stamp))
        self.pub_joints.publish(_joint_state(ARM_JOINTS, r.q, r.dq, stamp))
        self.pub_fingers.publish(_joint_state(FINGER_JOINTS, r.finger_pos, r.finger_vel, stamp))

    def _publish_slow(self, r: ArmReading, renderer: CameraRenderer | None, stamp: float) -> None:
        self._publish_mode(r.fault)
        self.pub_task.publish(String(data=json.dumps({"succeed": r.succeed, "stamp": stamp})))
        if renderer is None:
            return
        with self.arm.lock:
            stamp = time.time()
            frames = renderer.render(self.arm.sim.data)
        for name, frame in frames.items():
            self.pub_images[name].publish(rm.image_msg(frame, stamp, name))

    def _publish_mode(self, fault: str | None) -> None:
        self.pub_mode.publish(String(data=fault or "ok"))


def _joint_state(names: list[str], q: np.ndarray, dq: np.ndarray, stamp: float) -> JointState:
    msg = JointState()
    msg.header.stamp = rm.to_stamp(stamp)
    msg.name, msg.position, msg.velocity = (
        list(names),
        [float(v) for v in q],
        [float(v) for v in dq],
    )
    return msg


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="simulated Franka driver (ROS 2 node, MuJoCo Panda)"
    )
    parser.add_argument("config", help="rig file, e.g. hardware_configs/sim_panda.yaml")
    args = parser.parse_args(argv)
    cfg = load_hardware_config(args.config)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = rm.stop_on_signals()
    driver = SimFrankaDriver(cfg)
    executor, mover_executor = SingleThreadedExecutor(), SingleThreadedExecutor()
    executor.add_node(driver)
    mover_executor.add_node(driver.mover)
    mover = threading.Thread(
        target=rm.spin_until, args=(mover_executor, stop), name="joint-mover", daemon=True
    )
    driver.start()
    mover.start()
    spin_watch = StallWatch("driver executor").start()
    try:
        rm.spin_until(executor, stop, spin_watch.beat)
    finally:
        stop.set()
        spin_watch.stop()
        driver.stop()
        mover.join(timeout=2)
        for ex in (executor, mover_executor):
            ex.shutdown()
        driver.mover.destroy_node()
        driver.destroy_node()
        rclpy.try_shutdown()

if __name__ == "__main__":
    main()
