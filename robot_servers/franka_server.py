"""`franka_server`: the only code that moves the arm. An rclpy node (the adapter's topics) behind a
ZeroMQ ROUTER that serves the env with msgpack requests (`serl.robot.protocol`); every command
passes `ArmControl`'s safety.

One owner at a time: the first client to send a request owns the arm until it sends `release` or
stays silent for `robot.owner_timeout_s`; others get an error reply (only `health` is open to
anyone). A malformed, oversized or invalid request gets an error reply and the server keeps serving.
Binds loopback unless the rig file allows otherwise; optional CURVE (`serl keys generate`: the
server uses the learner-side key pair and authorized folder).

    python -m robot_servers.franka_server hardware_configs/sim_panda.yaml \
        [--address tcp://127.0.0.1:5600]
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from typing import Any

import rclpy
import zmq
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from robot_servers.adapters.base import Arm
from robot_servers.arm_control import ArmControl
from robot_servers.arm_jobs import FaultRefused, Job, Refused
from robot_servers.ros_msgs import spin_until, stop_on_signals
from robot_servers.stall_watch import StallWatch
from serl.robot import protocol
from serl.robot.hardware_config import HardwareConfig, load_hardware_config
from serl.transport.codec import BadMessage
from serl.transport.keys import LearnerCurve, make_server, start_authenticator

log = logging.getLogger("franka_server")
HARD_MAX_MESSAGE = 16 << 20  # ZeroMQ drops larger messages (and the peer) before they reach us


def make_adapter(cfg: HardwareConfig, node: Node) -> Arm:
    if cfg.robot.adapter == "sim":
        from robot_servers.adapters.sim import SimArmAdapter

        return SimArmAdapter(node, cfg)
    if cfg.robot.adapter == "libfranka":
        # raises naming what to install
        from robot_servers.adapters.libfranka import LibfrankaArm

        return LibfrankaArm(node, cfg)
    # raises naming what to install
    from robot_servers.adapters.franka_ros2 import FrankaRos2Adapter

    return FrankaRos2Adapter(node, cfg)


class FrankaServer:
    """The ROUTER loop: ownership, request dispatch, and the periodic safety tick of
    `ArmControl`."""

    def __init__(self, cfg: HardwareConfig, control: ArmControl, address: str | None = None,
                 context: zmq.Context | None = None):
        self.cfg, self.control = cfg, control
        self.context = context or zmq.Context()
        self._auth = None
        sock = self.context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        # a client that recreated its socket keeps its identity
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.MAXMSGSIZE, HARD_MAX_MESSAGE)
        robot = cfg.robot
        if robot.curve_server_secret_key is not None:
            self._auth = start_authenticator(
                self.context,
                LearnerCurve(robot.curve_server_secret_key, robot.curve_authorized_keys_dir),
            )
            make_server(
                sock, LearnerCurve(robot.curve_server_secret_key, robot.curve_authorized_keys_dir)
            )
        self.address = address or robot.address
        sock.bind(self.address)
        self.socket = sock
        self.owner: bytes | None = None
        self.owner_seen = -float("inf")
        self.job: tuple[bytes, int, str, Job] | None = None
        self.stats = {"requests": 0, "bad_requests": 0, "refused_owner": 0}
        self._handlers = {
            "get_state": lambda a: self.control.state(),
            "set_pose": self.control.set_pose,
            "gripper": self.control.gripper,
            "health": lambda a: self.health(),
        }
        self._jobs = {"reset": self.control.reset_job, "recover": self.control.recover_job,
                      "set_impedance": self.control.impedance_job}

    # ---------- the loop ----------
    def serve(self, stop: threading.Event) -> None:
        period = 1.0 / self.cfg.control.server_rate_hz
        next_tick = time.monotonic()
        while not stop.is_set():
            wait_ms = max(0.0, next_tick - time.monotonic()) * 1000
            if self.socket.poll(int(wait_ms) + 1):
                for _ in range(100):  # drain what is there, but never starve the safety tick
                    try:
                        frames = self.socket.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._handle(frames)
            now = time.monotonic()
            if now >= next_tick:
                self.control.tick(now)
                self._step_job()
                next_tick = max(next_tick + period, now - period)

    def close(self) -> None:
        self.socket.close(linger=0)
        if self._auth is not None:
            self._auth.stop()

    # ---------- requests ----------
    def _reply(
        self,
        identity: bytes,
        req_id: int | None,
        result: dict | None = None,
        error: str | None = None,
        fault: bool = False,
    ) -> None:
        self.socket.send_multipart([identity, protocol.encode_reply(req_id, result, error, fault)])

    def _handle(self, frames: list[bytes]) -> None:
        identity, body = frames[0], frames[1:]
        self.stats["requests"] += 1
        if len(body) != 1:
            self.stats["bad_requests"] += 1
            return self._reply(
                identity, None, error=f"bad request: expected 1 frame, got {len(body)}"
            )
        try:
            req = protocol.decode_request(body[0], self.cfg.robot.max_request_bytes)
        except protocol.RequestError as err:
            self.stats["bad_requests"] += 1
            return self._reply(identity, err.req_id, error=f"bad request: {err}")
        except BadMessage as err:
            self.stats["bad_requests"] += 1
            return self._reply(identity, None, error=f"bad request: {err}")
        if req.op != "health" and not self._claim(identity):
            self.stats["refused_owner"] += 1
            return self._reply(
                identity,
                req.id,
                error="the robot is owned by another client; it is released when that client "
                f"sends 'release' or is silent for {self.cfg.robot.owner_timeout_s} s",
            )
        if req.op == "release":
            self.owner = None
            return self._reply(identity, req.id, {})
        if req.op in self._jobs:
            return self._start_job(identity, req)
        if self.job is not None and req.op in ("set_pose", "gripper"):
            return self._reply(identity, req.id, error=f"busy: {self.job[2]} in progress")
        self._run(identity, req.id, lambda: self._handlers[req.op](req.args))

    def _claim(self, identity: bytes) -> bool:
        now = time.monotonic()
        owner_busy = self.job is not None and self.job[0] == self.owner
        if self.owner not in (None, identity) and (
            now - self.owner_seen < self.cfg.robot.owner_timeout_s or owner_busy
        ):
            return False
        if self.owner != identity:
            log.info("robot owned by client %r", identity)
        self.owner, self.owner_seen = identity, now
        return True

    def _run(self, identity: bytes, req_id: int, fn) -> None:
        try:
            result = fn()
        except FaultRefused as err:
            return self._reply(identity, req_id, error=str(err), fault=True)
        except (Refused, ValueError, BadMessage) as err:
            return self._reply(identity, req_id, error=str(err))
        # a bug must not stop the server that holds the arm
        except Exception as err:  # noqa: BLE001
            log.exception("request failed")
            return self._reply(
                identity, req_id, error=f"internal error: {type(err).__name__}: {err}"
            )
        self._reply(identity, req_id, result)

    def _start_job(self, identity: bytes, req: protocol.Request) -> None:
        if self.job is not None:
            return self._reply(identity, req.id, error=f"busy: {self.job[2]} in progress")
        try:
            generator = self._jobs[req.op](req.args)
        except Exception as err:  # noqa: BLE001 -- reported like any other refusal
            return self._run(identity, req.id, _raiser(err))
        self.job = (identity, req.id, req.op, generator)
        self._step_job()

    def _step_job(self) -> None:
        if self.job is None:
            return
        identity, req_id, _, generator = self.job
        try:
            next(generator)
            return
        except StopIteration as done:
            self.job = None
            self._reply(identity, req_id, done.value)
        except Exception as err:  # noqa: BLE001 -- classified by _run
            self.job = None
            self._run(identity, req_id, _raiser(err))
        self.owner_seen = time.monotonic()  # a long job is not silence

    def health(self) -> dict[str, Any]:
        state = self.control.arm.latest()
        return {
            "protocol": protocol.PROTOCOL_VERSION,
            "adapter": self.cfg.robot.adapter,
            "mode": self.control.mode,
            "reason": self.control.reason,
            "has_state": state is not None,
            "state_age_s": None if state is None else time.monotonic() - state.received,
            "owned": self.owner is not None,
            "job": None if self.job is None else self.job[2],
            "arm": self.control.arm.info(),
            "counters": {**self.control.counters, **self.stats},
        }


def _raiser(err: Exception):
    def fn():
        raise err

    return fn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="robot server: ROS 2 node + ZeroMQ ROUTER, safety on the arm"
    )
    parser.add_argument("config", help="rig file, e.g. hardware_configs/sim_panda.yaml")
    parser.add_argument("--address", help="override robot.address (tcp://HOST:PORT)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = load_hardware_config(args.config)
    if args.address:
        cfg = cfg.model_validate(
            {**cfg.model_dump(), "robot": {**cfg.robot.model_dump(), "address": args.address}}
        )
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = stop_on_signals()
    node = Node("franka_server")
    control = ArmControl(cfg, make_adapter(cfg, node))
    server = FrankaServer(cfg, control)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin_watch = StallWatch("server executor").start()
    spinner = threading.Thread(
        target=spin_until, args=(executor, stop, spin_watch.beat), name="ros-spin"
    )
    spinner.start()
    log.info("robot server on %s (%s adapter)", server.address, cfg.robot.adapter)
    try:
        server.serve(stop)
    finally:
        stop.set()
        spinner.join()
        spin_watch.stop()
        control.arm.close()
        server.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
