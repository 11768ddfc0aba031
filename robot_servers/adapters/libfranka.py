"""The libfranka arm adapter (a real FR3, or franky-sim in CI), on franky-control: libfranka's 1 kHz
loop runs in franky's C++; this adapter only updates its reference and reads its state.

- Motion: one long-lived `CartesianImpedanceTrackingMotion`; `send_target` updates its reference
  (thread-safe, used from the next 1 kHz cycle). Its error clips are the rig's target-to-measured
  limits (per axis: `libfranka.error_clip`), joint-limit avoidance on, gains changed at run time.
- State (`state_rate_hz` thread): tcp_pose = O_T_EE (Desk's end-effector frame is in it: nothing is
  added), twist J(q) dq, wrench O_F_ext_hat_K, stamped with the wall clock when read (the server's
  convention; libfranka's own time starts at the robot's boot); a state whose libfranka time does
  not advance is not fresh, so a dead link reads as stale state (ArmControl's "no robot state"
  fault) before its exception arrives.
- Gripper: one worker thread runs every command and reads the width meanwhile
  (robot_servers/adapters/franky_gripper.py: overlapping commands hang).
- Faults: a control exception ends the motion; its text is `fault()`. Recovery (a job thread):
  rebuild Robot and Gripper if the link was lost, automatic error recovery, a new tracking motion
  at the measured pose.
- Fault-injection seam (`inject_fault`): reflex and user stop, which franky-sim cannot produce.
- robot_servers/adapters/libfranka_sim.py: on a simulated rig the task's success, cube pose and
  reset; with `libfranka.fault_injection` (tests) the seam's Trigger services.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from rclpy.node import Node

from robot_servers.adapters import franky_link as fl
from robot_servers.adapters.base import ArmState
from robot_servers.adapters.franky_gripper import GripperWorker
from robot_servers.adapters.franky_link import franky
from robot_servers.adapters.libfranka_sim import INJECTED, RigTask, serve_fault_injection
from serl.robot.hardware_config import HardwareConfig

log = logging.getLogger("libfranka")


class LibfrankaArm:
    """The `Arm` (robot_servers/adapters/base.py) on franky; module docstring."""

    def __init__(self, node: Node, cfg: HardwareConfig):
        self.cfg, self.section = cfg, cfg.libfranka
        self._lock = threading.Lock()  # the fields below
        self._robot_lock = threading.RLock()  # franky.Robot calls from different threads
        self._link: fl.Link | None = None
        self._phase = "down"  # down | tracking | busy (job) | fault
        self._motion = None
        self._latest: ArmState | None = None
        self._last_time = -1.0
        self._fault: str | None = None
        self._fatal: str | None = None  # a connect error no retry fixes (version mismatch)
        self._connect_error: str | None = None
        self._mode_name, self._mode_override = "Other", None
        self._motion_errors = "[]"
        self._impedance = cfg.impedance.defaults()
        self._stop = threading.Event()
        self._jobs = ThreadPoolExecutor(1, thread_name_prefix="libfranka-job")
        self._gripper = GripperWorker(self.section, self._current_gripper)
        self._thread = threading.Thread(target=self._state_loop, name="libfranka-state",
                                        daemon=True)
        self._thread.start()
        self._task = RigTask(node, cfg) if cfg.sim is not None else None
        if self.section.fault_injection:
            serve_fault_injection(node, cfg, self.inject_fault)

    # ---------- what the server reads ----------
    def latest(self) -> ArmState | None:
        with self._lock:
            return self._latest

    def joint_names(self) -> list[str]:
        return [f"fr3_joint{i + 1}" for i in range(7)]

    def gripper_state(self) -> tuple[float, bool]:
        width, moving = self._gripper.width()
        return min(1.0, max(0.0, (width or 0.0) / self.cfg.ros.gripper_max_width)), moving

    def fault(self) -> str | None:
        with self._lock:
            return self._fatal or self._fault

    def info(self) -> dict:
        v = fl.versions()
        with self._lock:
            link = self._link
            return {
                "connected": link is not None and self._phase != "down",
                "connect_error": self._connect_error, "robot_mode": self._mode_override
                or self._mode_name, "last_motion_errors": self._motion_errors,
                "ee_offset_m": None if link is None else link.ee_offset.tolist(),
                "ee_quat": None if link is None else link.ee_quat.tolist(),
                "joint_limit_avoidance": link is not None and link.limits is not None,
                **self._gripper.info(), "franky": v["franky"], "libfranka": v["libfranka"]}

    def task_succeeded(self) -> bool | None:
        return None if self._task is None else self._task.succeeded()

    def object_pose(self) -> np.ndarray | None:
        """The task object's pose (xyz + xyzw) on a simulated rig; None on a real one."""
        return None if self._task is None else self._task.object_pose()

    def reset_task(self) -> Future | None:
        return None if self._task is None else self._task.reset()

    # ---------- commands ----------
    def send_target(self, pos: np.ndarray, quat: np.ndarray) -> None:
        with self._lock:
            motion = self._motion if self._phase == "tracking" else None
        if motion is not None:  # otherwise recovery or the job restarts at the measured pose
            motion.set_reference(fl.reference(pos, quat))

    def gripper(self, close: bool) -> None:
        self._gripper.command("close" if close else "open")

    def set_impedance(self, params: dict[str, float]) -> Future:
        with self._lock:
            self._impedance.update(params)
            motion, impedance = self._motion, dict(self._impedance)
        if motion is not None:  # franky smooths the change over gains_time_constant (0.1 s)
            motion.set_gains(fl.gains(impedance))
        return _done("impedance set")

    def clear_errors(self) -> Future:
        return self._jobs.submit(self._guarded, self._recover)

    def joint_reset(self, q: np.ndarray) -> Future:
        return self._jobs.submit(self._guarded, self._joint_move, np.asarray(q, dtype=np.float64))

    def inject_fault(self, kind: str) -> str:
        """THE fault-injection seam: what a reflex or user stop does here (the motion ends, the
        server sees libfranka's text and robot mode), for the faults franky-sim cannot produce.
        Recovery then runs the real path (automatic error recovery, a new motion)."""
        text, mode = INJECTED[kind]
        with self._lock:
            link, self._phase, self._motion = self._link, "fault", None
            self._fault, self._mode_override = text, mode
        if link is not None:
            with self._robot_lock:
                fl.stop_motion(link.robot)
        return text

    def close(self) -> None:
        self._stop.set()
        self._gripper.close()
        with self._lock:
            link, self._phase = self._link, "down"
        if link is not None:
            with self._robot_lock:
                fl.stop_motion(link.robot)
        self._jobs.shutdown(wait=False, cancel_futures=True)
        self._thread.join(timeout=3)

    # ---------- the state thread ----------
    def _state_loop(self) -> None:
        period = 1.0 / self.section.state_rate_hz
        while not self._stop.is_set():
            with self._lock:
                link, phase, fatal = self._link, self._phase, self._fatal
            if link is None and fatal is None:
                self._first_connect()
            elif link is not None and phase != "down":
                self._read(link, phase)
            self._stop.wait(period if link is not None else 0.5)

    def _first_connect(self) -> None:
        """Until the arm answers once; after that only recovery reconnects."""
        try:
            link = fl.connect(self.section)
            with self._robot_lock:
                motion = self._start_tracking(link)
        except fl.LinkError as err:
            with self._lock:
                if "version mismatch" in str(err) or "end-effector frame" in str(err):
                    self._fatal = str(err)
                    log.error("%s", err)
                self._connect_error = str(err)
            return
        with self._lock:
            self._link, self._motion, self._phase = link, motion, "tracking"
            self._connect_error = None
        if link.gripper is not None and self.section.gripper_homing:
            self._gripper.command("homing")
        log.info("connected to %s: F_T_EE %s", self.section.fci_host, link.ee_offset.round(4))

    def _read(self, link: fl.Link, phase: str) -> None:
        try:
            with self._robot_lock:
                s = link.robot.state
                state = fl.arm_state(link.robot, s, time.monotonic())
                robot_time, state = state.stamp, dataclasses.replace(state, stamp=time.time())
                ended = phase == "tracking" and link.robot.poll_motion()
        except Exception as err:  # noqa: BLE001 -- a control exception ends the motion
            text = fl.explain(err, self.section.fci_host)
            lost = isinstance(err, franky.NetworkException | RuntimeError)
            with self._lock:
                if self._phase in ("tracking", "fault") and self._link is link:
                    self._phase, self._motion = "down" if lost else "fault", None
                    self._fault = self._fault or text
            log.warning("motion ended: %s", text)
            return
        with self._lock:
            if robot_time != self._last_time:  # libfranka's time advances: fresh
                self._latest, self._last_time = state, robot_time
            self._mode_name = str(s.robot_mode).split(".")[-1]
            self._motion_errors = str(s.last_motion_errors)
            if ended and self._phase == "tracking":
                self._phase, self._motion = "fault", None
                self._fault = self._fault or f"the tracking motion ended ({self._motion_errors})"

    def _start_tracking(self, link: fl.Link):
        """A new tracking motion holding the measured pose (never a stale target); robot lock
        held."""
        if self._stop.is_set():  # a job that outlived close() never restarts a motion
            raise RuntimeError("the libfranka adapter is closed")
        pose = link.robot.state.O_T_EE
        with self._lock:
            impedance = dict(self._impedance)
        motion = fl.tracking_motion(self.cfg, link, impedance, np.asarray(pose.translation),
                                    np.asarray(pose.quaternion))
        link.robot.move(motion, asynchronous=True)
        return motion

    # ---------- jobs (one at a time, in the job thread) ----------
    def _guarded(self, job, *args) -> str:
        with self._lock:
            before, self._phase = self._phase, "busy"
        try:
            return job(*args)
        except Exception as err:  # noqa: BLE001 -- handed to the server's job as its failure
            text = err if isinstance(err, fl.LinkError) else fl.explain(err, self.section.fci_host)
            with self._lock:
                lost = before == "down" or isinstance(err, fl.LinkError)
                self._phase, self._motion = "down" if lost else "fault", None
                self._fault = self._fault or str(text)
            raise RuntimeError(str(text)) from None

    def _recover(self) -> str:
        with self._lock:
            link, lost = self._link, self._phase == "down" or self._link is None
        if lost or not self._alive(link):
            link = fl.connect(self.section)  # a franky.Robot never reconnects: a new one
            with self._lock:
                self._link, self._last_time = link, -1.0
            self._gripper.reconnected()
        with self._robot_lock:
            fl.stop_motion(link.robot)
            if not link.robot.recover_from_errors():
                errors = link.robot.state.current_errors
                raise RuntimeError(f"errors remain after automatic error recovery: {errors}")
            motion = self._start_tracking(link)
        with self._lock:
            self._motion, self._phase = motion, "tracking"
            self._fault = self._mode_override = None
        return "errors cleared, tracking the measured pose"

    def _alive(self, link: fl.Link | None) -> bool:
        try:
            with self._robot_lock:
                link.robot.state  # noqa: B018 -- raises on a dead link
            return True
        except Exception:  # noqa: BLE001
            return False

    def _joint_move(self, q: np.ndarray) -> str:
        with self._lock:
            link = self._link
        if link is None:
            raise RuntimeError("not connected to the arm")
        with self._robot_lock:
            fl.stop_motion(link.robot)
            link.robot.move(franky.JointWaypointMotion(
                [franky.JointWaypoint(q.tolist())],
                relative_dynamics_factor=self.section.joint_reset_dynamics_factor),
                asynchronous=True)
        deadline = time.monotonic() + 28.0
        while True:  # the lock only briefly, so the state keeps flowing
            with self._robot_lock:
                if link.robot.join_motion(0.02):
                    break
            if time.monotonic() > deadline:
                with self._robot_lock:  # never leave the waypoint motion driving the arm
                    fl.stop_motion(link.robot)
                raise RuntimeError("joint reset did not finish within 28 s")
            time.sleep(0.02)
        with self._robot_lock:
            motion = self._start_tracking(link)
        with self._lock:
            self._motion, self._phase = motion, "tracking"
        return "joints at the reset configuration"

    def _current_gripper(self):
        with self._lock:
            link, phase = self._link, self._phase
        return None if link is None or phase == "down" else link.gripper


def _done(message: str) -> Future:
    future: Future = Future()
    future.set_result(message)
    return future
