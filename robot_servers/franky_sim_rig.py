"""`franky_sim_rig`: franky-sim (a MuJoCo FR3 behind libfranka's network protocol, robot server
version 10, gripper server version 3) as the robot of a libfranka rig, plus what a real rig has
around its arm: the pick-cube task's table and cube in the scene and the rig file's `ros` cameras,
published as rgb8 sensor_msgs/Image the way the simulated driver does.

franky-sim's 1 kHz loop runs in its own thread (`SimulationServer.run_async`) and only ever copies
qpos into a snapshot when the status thread asks (TASK_STATUS_HZ); rendering (shadows and
multisampling off: the default 4096^2 shadow map costs 130+ ms a frame on this CPU) runs in that
thread at `sim.image_rate_hz`, never on the loop, and only for the rig file's cameras (none: no
renderer at all). The robot server reaches the arm at `libfranka.fci_host` (ports 1337/1338)
like a real control unit.

ROS 2 (names under `ros.sim_namespace`): `task_status` (std_msgs/String JSON {"object_pose" xyz +
xyzw, "succeed" (the cube lifted by the task's lift height), "stamp"}), `push`
(geometry_msgs/WrenchStamped: force on the hand, base frame, held until the next message; tests'
disturbance), std_srvs/Trigger `reset_task` (cube to a seeded place; the reply's message is the
placement as JSON {"object", "pos", "quat" xyzw}), `stop_server` / `start_server` (the cable pull:
close franky-sim's sockets, then a new simulator on the same address, the arm back at its initial
pose, as after a reboot).

    python -m robot_servers.franky_sim_rig hardware_configs/franky_sim.yaml
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import rclpy
from geometry_msgs.msg import WrenchStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String
from std_srvs.srv import Trigger

from robot_servers import ros_msgs as rm
from serl.envs.sim.config import task_defaults
from serl.envs.sim.model import SceneObjects
from serl.envs.sim.render import CameraRenderer
from serl.robot.hardware_config import HardwareConfig, load_hardware_config

HAND = "robot0_hand"
CAMERAS = ("front", "wrist")
CUBE_XY = (0.5, 0.0)  # m, where the cube starts; reset_task draws within +-CUBE_XY_RANGE
CUBE_XY_RANGE = 0.05
# Hz of task_status: a 10 Hz policy reads a cube pose at most one 20 ms period old
TASK_STATUS_HZ = 50.0


def extend_scene(sim) -> None:
    """The pick-cube task's table, cube and cameras (as in serl/envs/sim/model.py), added to
    franky-sim's scene before it compiles. Its ground plane is z = 0 at the robot base, as our
    table top."""
    half = SceneObjects().cube_half_size
    world = sim.worldbody
    ET.SubElement(world, "geom", name="table", type="box", pos="0.45 0 -0.02",
                  size="0.55 0.6 0.02", rgba="0.55 0.5 0.44 1")
    cube = ET.SubElement(world, "body", name="cube", pos=f"{CUBE_XY[0]} {CUBE_XY[1]} {half}")
    ET.SubElement(cube, "freejoint", name="cube")
    ET.SubElement(cube, "geom", name="cube", type="box", size=f"{half} {half} {half}",
                  mass=str(SceneObjects().cube_mass), rgba="0.85 0.1 0.1 1",
                  friction="1.0 0.05 0.001", condim="4")
    ET.SubElement(world, "camera", name="front", pos="0.95 0 0.5",
                  xyaxes="0 1 0 -0.669 0 0.743", fovy="55")
    hand = next(b for b in world.iter("body") if b.get("name") == HAND)
    ET.SubElement(hand, "camera", name="wrist", pos="0.06 0 0.03", xyaxes="0 -1 0 -1 0 0",
                  fovy="75")


class FrankySim:
    """One franky-sim incarnation: simulator + server on `host`, its loop running."""

    def __init__(self, cfg: HardwareConfig, host: str):
        from franky_sim import SimulationServer
        from franky_sim.mujoco_simulator import MujocoSimulator

        self.sim = MujocoSimulator(enable_visualization=False)
        self.sim.init()
        initial_q = cfg.reset.joint_reset or (0.0, 0.0, 0.0, -1.57, 0.0, 1.57, 0.785)
        self.sim.add_robot(initial_q=tuple(initial_q))
        extend_scene(self.sim)
        self.server = SimulationServer(self.sim, hostname_candidates=[host])
        self.server.init()  # compiles the scene and starts the simulation
        model = self.sim.model
        model.vis.quality.shadowsize, model.vis.quality.offsamples = 0, 0
        self.hand = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, HAND)
        cube = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "cube")
        self.cube_adr, self.cube_dof = model.jnt_qposadr[cube], model.jnt_dofadr[cube]
        self.push = np.zeros(3)
        self.place: np.ndarray | None = None  # a cube qpos for the loop to apply
        self._want, self._ready = threading.Event(), threading.Event()
        self._snapshot = np.zeros(model.nq)
        self.sim.register_pre_step_callback(self._pre_step)
        self.sim.register_post_step_callback(self._post_step)
        self.server.run_async(realtime=True)

    def _pre_step(self, sim) -> None:
        sim.data.xfrc_applied[self.hand, :3] = self.push
        place, self.place = self.place, None
        if place is not None:
            adr = self.cube_adr
            sim.data.qpos[adr:adr + 7] = place
            sim.data.qvel[self.cube_dof:self.cube_dof + 6] = 0.0

    def _post_step(self, sim) -> None:
        if self._want.is_set():  # a copy of nq floats, only when asked
            self._snapshot[:] = sim.data.qpos
            self._want.clear()
            self._ready.set()

    def snapshot(self, timeout_s: float = 0.2) -> np.ndarray | None:
        """qpos as the loop left it after a step; None when the loop does not run."""
        self._ready.clear()
        self._want.set()
        return self._snapshot.copy() if self._ready.wait(timeout_s) else None

    def stop(self) -> None:
        """Stop the loop and close every socket, the clients' too (they see libfranka's UDP
        timeout)."""
        self.server.cleanup()
        for rs in self.server.robot_servers:
            rs.reset_state()
            if rs.gripper_server is not None:
                rs.gripper_server.reset_state()
                rs.gripper_server.cleanup()


class FrankySimRig(Node):
    def __init__(self, cfg: HardwareConfig):
        super().__init__("franky_sim_rig")
        self.cfg, self.host = cfg, cfg.libfranka.fci_host
        self.cameras = {n: c for n, c in cfg.cameras.items() if c.type == "ros"}
        unknown = set(self.cameras) - set(CAMERAS)
        if unknown:
            raise ValueError(f"cameras {sorted(unknown)} do not exist in franky-sim's scene "
                             f"(it has {CAMERAS})")
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(cfg.sim.seed)
        self.lift_height = task_defaults(cfg.sim.task).lift_height  # success: lifted this far
        self.franky: FrankySim | None = FrankySim(cfg, self.host)
        ns = cfg.ros.sim_namespace
        self.pub_task = self.create_publisher(String, f"{ns}/task_status", rm.RELIABLE_QOS)
        self.pub_images = {n: self.create_publisher(rm.Image, c.topic, rm.IMAGE_QOS)
                           for n, c in self.cameras.items()}
        self.create_subscription(WrenchStamped, f"{ns}/push", self._on_push, rm.RELIABLE_QOS)
        for name, fn in (("stop_server", self._stop_server), ("start_server", self._start_server),
                         ("reset_task", self._reset_task)):
            self.create_service(Trigger, f"{ns}/{name}", _trigger(fn))
        self._stop = threading.Event()
        self._render = threading.Thread(target=self._status_loop, name="status", daemon=True)
        self._render.start()

    def _on_push(self, msg: WrenchStamped) -> None:
        f = msg.wrench.force
        with self._lock:
            if self.franky is not None:
                self.franky.push = np.array([f.x, f.y, f.z])

    def _stop_server(self) -> str:
        with self._lock:
            franky, self.franky = self.franky, None
        if franky is not None:
            franky.stop()
        return "franky-sim stopped"

    def _start_server(self) -> str:
        with self._lock:
            if self.franky is not None:
                return "franky-sim already running"
        franky = FrankySim(self.cfg, self.host)
        with self._lock:
            self.franky = franky
        return f"franky-sim running on {self.host}"

    def _reset_task(self) -> str:
        with self._lock:
            franky = self.franky
        if franky is None:
            raise RuntimeError("franky-sim is stopped")
        xy = np.asarray(CUBE_XY) + self._rng.uniform(-1, 1, 2) * CUBE_XY_RANGE
        half = SceneObjects().cube_half_size
        franky.place = np.array([xy[0], xy[1], half, 1.0, 0.0, 0.0, 0.0])
        time.sleep(0.05)  # a few loop steps: the next snapshot has it
        return json.dumps({"object": "cube", "pos": [float(xy[0]), float(xy[1]), half],
                           "quat": [0.0, 0.0, 0.0, 1.0]})

    # ---------- the status thread (owns the EGL context) ----------
    def _status_loop(self) -> None:
        period, image_period = 1.0 / TASK_STATUS_HZ, 1.0 / self.cfg.sim.image_rate_hz
        size = max((max(c.capture_size or c.size) for c in self.cameras.values()), default=0)
        renderer, data, model = None, None, None
        deadline = next_image = time.monotonic()
        try:
            while not self._stop.is_set():
                with self._lock:
                    franky = self.franky
                qpos = franky.snapshot() if franky is not None else None
                stamp = time.time()
                if qpos is not None:
                    self._publish_status(franky, qpos, stamp)
                if qpos is not None and size and time.monotonic() >= next_image:
                    if franky.sim.model is not model:  # a new incarnation: a new model
                        if renderer is not None:
                            renderer.close()
                        model, data = franky.sim.model, mujoco.MjData(franky.sim.model)
                        renderer = CameraRenderer(model, tuple(self.cameras), size)
                    self._publish_images(model, data, qpos, renderer, stamp)
                    next_image = max(next_image + image_period, time.monotonic())
                deadline = max(deadline + period, time.monotonic())
                self._stop.wait(max(0.0, deadline - time.monotonic()))
        finally:
            if renderer is not None:
                renderer.close()

    def _publish_status(self, franky: FrankySim, qpos: np.ndarray, stamp: float) -> None:
        cube = qpos[franky.cube_adr:franky.cube_adr + 7]
        pose = [*map(float, cube[:3]), *map(float, cube[4:7]), float(cube[3])]  # wxyz -> xyzw
        succeed = pose[2] >= SceneObjects().cube_half_size + self.lift_height
        self.pub_task.publish(String(data=json.dumps(
            {"object_pose": pose, "succeed": bool(succeed), "stamp": stamp})))

    def _publish_images(self, model, data, qpos, renderer, stamp: float) -> None:
        data.qpos[:] = qpos
        mujoco.mj_forward(model, data)
        for name, frame in renderer.render(data).items():
            self.pub_images[name].publish(rm.image_msg(frame, stamp, name))

    def close(self) -> None:
        self._stop.set()
        self._render.join(timeout=5)
        self._stop_server()


def _trigger(fn):
    def handle(_request, response):
        try:
            response.message, response.success = fn() or "", True
        except Exception as err:  # noqa: BLE001 -- reported to the caller, the rig keeps running
            response.success, response.message = False, f"{type(err).__name__}: {err}"
        return response

    return handle


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="franky-sim rig: simulated FR3 over libfranka's "
                                     "protocol, with the task scene and ROS 2 cameras")
    parser.add_argument("config", help="rig file, e.g. hardware_configs/franky_sim.yaml")
    args = parser.parse_args(argv)
    cfg = load_hardware_config(args.config)
    if cfg.libfranka is None or cfg.sim is None:
        raise SystemExit(f"{args.config}: a franky-sim rig needs 'libfranka' and 'sim' sections")
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = rm.stop_on_signals()
    rig = FrankySimRig(cfg)
    executor = SingleThreadedExecutor()
    executor.add_node(rig)
    try:
        rm.spin_until(executor, stop)
    finally:
        stop.set()
        rig.close()
        executor.shutdown()
        rig.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
