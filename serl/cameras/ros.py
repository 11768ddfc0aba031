"""ROS 2 image topics (`sensor_msgs/Image`) as cameras: one rclpy node on its own context and
executor thread serves every ROS camera of a rig; the header stamp is the capture time."""

from __future__ import annotations

import threading
import time

import numpy as np

from serl.cameras.base import CameraError
from serl.cameras.clock import wall_to_monotonic
from serl.cameras.config import CameraConfig

# encoding -> (channels, channel order to RGB); anything else is refused by name
ENCODINGS = {
    "rgb8": (3, [0, 1, 2]),
    "bgr8": (3, [2, 1, 0]),
    "rgba8": (4, [0, 1, 2]),
    "bgra8": (4, [2, 1, 0]),
    "mono8": (1, [0, 0, 0]),
}


def image_from_msg(msg) -> np.ndarray:
    """A sensor_msgs/Image as uint8 H x W x 3 RGB (a copy), or ValueError naming what is wrong."""
    if msg.encoding not in ENCODINGS:
        raise ValueError(
            f"image encoding {msg.encoding!r} is not supported (supported: {', '.join(ENCODINGS)})"
        )
    channels, order = ENCODINGS[msg.encoding]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(
        bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data, np.uint8
    )
    if step < w * channels or data.size < h * step:
        raise ValueError(
            f"image data of {data.size} bytes does not hold {h} rows of step {step} "
            f"({w} px x {channels} channels)"
        )
    rows = data[: h * step].reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    return np.ascontiguousarray(rows[..., order])


def stamp_seconds(stamp) -> float:
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


class RosImageHost:
    """One rclpy context, node and executor thread for a rig's ROS cameras; `close()` tears all of
    it down."""

    def __init__(self, domain_id: int | None = None, node_name: str = "serl_cameras"):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        self._rclpy = rclpy
        self.context = Context()
        rclpy.init(
            context=self.context,
            domain_id=domain_id,
            signal_handler_options=SignalHandlerOptions.NO,
        )
        self.node = rclpy.create_node(
            node_name, context=self.context, start_parameter_services=False
        )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="ros-cameras", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        # the context went down under us: we are closing
        except (ExternalShutdownException, RuntimeError):
            pass

    def close(self) -> None:
        if not self.context.ok():
            return
        self.context.try_shutdown()
        self._thread.join(timeout=2.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()


class RosImageSource:
    """`FrameSource` subscribed to one `sensor_msgs/Image` topic on a `RosImageHost` (best effort,
    newest wins)."""

    def __init__(self, cfg: CameraConfig, host: RosImageHost):
        if cfg.topic is None:
            raise ValueError("a ros camera needs 'topic'")
        self.cfg, self.host = cfg, host
        self._cond = threading.Condition()
        self._latest: tuple[object, float] | None = None  # (message, capture time), not yet grabbed
        self._sub = None

    def open(self) -> None:
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        self._sub = self.host.node.create_subscription(
            Image, self.cfg.topic, self._on_image, qos_profile_sensor_data
        )

    def _on_image(self, msg) -> None:
        stamp = wall_to_monotonic(stamp_seconds(msg.header.stamp))
        with self._cond:
            self._latest = (msg, stamp)
            self._cond.notify_all()

    def grab(self, timeout_s: float) -> tuple[np.ndarray, float] | None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._latest is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            msg, stamp = self._latest
            self._latest = None
        # Decoded here, on the camera's reader thread, so the executor thread only hands messages
        # over.
        try:
            return image_from_msg(msg), stamp
        # a publisher sending the wrong format will not fix itself by reconnecting
        except ValueError as err:
            raise CameraError(f"topic {self.cfg.topic}: {err}") from err

    def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None and self.host.context.ok():
            self.host.node.destroy_subscription(sub)
