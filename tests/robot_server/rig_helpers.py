"""Shared by the robot-server tests: a test rig file, an rclpy probe node on the rig's private
domain, and small motion helpers on the raw client (no env in between)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
import yaml
from rclpy.executors import SingleThreadedExecutor
from std_srvs.srv import Trigger

from serl.robot.client import RobotClient, RobotFault

ROOT = Path(__file__).resolve().parents[2]


def rig_config_for_tests() -> dict:
    """sim_panda.yaml with a box that reaches below the table (so the wrench test can press into
    it), a lower wrench limit and a short ownership timeout."""
    raw = yaml.safe_load((ROOT / "hardware_configs" / "sim_panda.yaml").read_text())
    raw["safety"].update(box_min=[0.3, -0.25, -0.03], max_external_force=25.0)
    # a loaded CI core can stall the driver
    raw["robot"].update(owner_timeout_s=1.0, state_timeout_s=2.0)
    return raw


class RosProbe:
    """An rclpy node in its own context on the rig's domain: calls the driver's services, subscribes
    to topics."""

    def __init__(self, domain_id: int):
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("test_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._clients: dict[str, object] = {}
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def ready(self, service: str, timeout_s: float = 5.0):
        """The service's client, created and discovered once (discovery can take seconds on a
        loaded core, so a test that must time its trigger calls this first)."""
        if service not in self._clients:
            client = self.node.create_client(Trigger, service)
            assert client.wait_for_service(timeout_sec=timeout_s), (
                f"service {service} not available"
            )
            self._clients[service] = client
        return self._clients[service]

    def trigger(self, service: str, timeout_s: float = 5.0) -> Trigger.Response:
        future = self.ready(service, timeout_s).call_async(Trigger.Request())
        deadline = time.monotonic() + timeout_s
        while not future.done():
            assert time.monotonic() < deadline, f"{service} did not answer"
            time.sleep(0.01)
        return future.result()

    def close(self) -> None:
        for client in self._clients.values():
            self.node.destroy_client(client)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5)


def pose(client: RobotClient) -> np.ndarray:
    return client.get_state()["tcp_pose"].copy()


def command_for(
    client: RobotClient, target: np.ndarray, seconds: float, rate_hz: float = 20.0
) -> dict:
    """Send the same raw target repeatedly (as a client that means it), return the last reply."""
    reply = {}
    for _ in range(int(seconds * rate_hz)):
        reply = client.set_pose(target)
        time.sleep(1.0 / rate_hz)
    return reply


def wait_until(predicate, timeout_s: float, period_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period_s)
    return predicate()


@contextlib.contextmanager
def owned_client(address: str, curve=None, tries: int = 2):
    """A client that owns the arm at the reset pose, released on exit even when its set-up fails (an
    owned arm would refuse every later test). A fault during the move to the reset pose (the driver
    starved of CPU for a moment reads as a controller error) is recovered from and the reset tried
    again."""
    client = RobotClient(address, timeout_s=2.0, curve=curve)
    try:
        for attempt in range(tries):
            if client.get_state()["mode"] == "fault":
                client.recover()
            try:
                client.reset(timeout_s=20)
                break
            except RobotFault:
                if attempt == tries - 1:
                    raise
        yield client
    finally:
        client.release()
        client.close()
