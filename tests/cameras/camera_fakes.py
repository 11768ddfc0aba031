"""Stand-ins for camera hardware that cannot exist here, behind the interfaces the real drivers
use: a `cv2.VideoCapture`-like device and a `pyrealsense2`-like module. Everything above them is
the real code."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np


def gradient_frame(width: int = 64, height: int = 48, seed: int = 0) -> np.ndarray:
    """An RGB frame whose pixels encode their position: R = column, G = row, B = seed."""
    rows, cols = np.mgrid[0:height, 0:width]
    channels = [cols % 256, rows % 256, np.full_like(rows, seed % 256)]
    return np.stack(channels, axis=-1).astype(np.uint8)


class FakeVideoCapture:
    """What `cv2.VideoCapture(device)` gives: frames in BGR at `fps`; `frozen` stops delivery
    (read() then fails after a short wait, as V4L2 does on a stalled device) until the device is
    reopened, if `thaw_on_open`."""

    opened: list = []  # every instance, in creation order (shared across a test via reset())

    def __init__(self, device, width=64, height=48, fps=100.0):
        self.device, self.width, self.height, self.period = device, width, height, 1.0 / fps
        self.props: list[tuple[int, float]] = []
        self.released = False
        FakeVideoCapture.opened.append(self)

    def isOpened(self) -> bool:  # noqa: N802 (cv2's name)
        return self.device != "missing"

    def set(self, prop, value) -> bool:
        self.props.append((prop, value))
        return True

    def read(self):
        time.sleep(self.period)
        if FakeVideoCapture.frozen_devices.get(self.device, 0) > 0:
            return False, None
        rgb = gradient_frame(self.width, self.height, seed=len(FakeVideoCapture.opened))
        return True, rgb[..., ::-1].copy()  # BGR, as OpenCV delivers

    def release(self) -> None:
        self.released = True
        frozen = FakeVideoCapture.frozen_devices.get(self.device, 0)
        if frozen > 0 and FakeVideoCapture.thaw_on_open:
            FakeVideoCapture.frozen_devices[self.device] = frozen - 1

    frozen_devices: dict = {}  # device -> number of reopenings it stays frozen for
    thaw_on_open = True

    @classmethod
    def reset(cls) -> None:
        cls.opened, cls.frozen_devices, cls.thaw_on_open = [], {}, True


class _Sensor:
    def __init__(self):
        self.options: dict = {}

    def set_option(self, option, value) -> None:
        self.options[option] = value


class _ColorFrame:
    def __init__(self, image, wall_ms, domain):
        self.image, self.wall_ms, self.domain = image, wall_ms, domain

    def __bool__(self) -> bool:
        return True

    def get_data(self):
        return self.image

    def get_timestamp(self) -> float:
        return self.wall_ms

    def get_frame_timestamp_domain(self):
        return self.domain


class FakeRealSense:
    """A `pyrealsense2`-shaped module: pipeline/config/stream/format/option/timestamp_domain. Frames
    are stamped `delay_s` before they are handed out, on the host's wall clock (global time, the
    default domain)."""

    def __init__(self, width=80, height=60, delay_s=0.02):
        self.stream = SimpleNamespace(color="color")
        self.format = SimpleNamespace(rgb8="rgb8")
        self.option = SimpleNamespace(enable_auto_exposure="ae", exposure="exposure",
                                      enable_auto_white_balance="awb", white_balance="wb")
        self.timestamp_domain = SimpleNamespace(global_time="global", system_time="system",
                                                hardware_clock="hw")
        self.sensor = _Sensor()
        self.enabled: list = []
        self.started = threading.Event()
        self.stopped = False
        self.width, self.height, self.delay_s = width, height, delay_s
        fake = self

        class Config:
            def enable_device(self, serial):
                fake.enabled.append(("device", serial))

            def enable_stream(self, *args):
                fake.enabled.append(("stream", *args))

        class Pipeline:
            def start(self, config):
                fake.started.set()
                device = SimpleNamespace(first_color_sensor=lambda: fake.sensor)
                return SimpleNamespace(get_device=lambda: device)

            def try_wait_for_frames(self, timeout_ms):
                time.sleep(0.01)
                frame = _ColorFrame(gradient_frame(fake.width, fake.height),
                                    (time.time() - fake.delay_s) * 1e3,
                                    fake.timestamp_domain.global_time)
                return True, SimpleNamespace(get_color_frame=lambda: frame)

            def stop(self):
                fake.stopped = True

        self.config, self.pipeline = Config, Pipeline
