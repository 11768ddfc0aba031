"""Intel RealSense colour stream through `pyrealsense2` (in the `robot` extra), opened by serial
number, with auto exposure and auto white balance off and their values fixed from the config."""

from __future__ import annotations

import time

import numpy as np

from serl.cameras.clock import wall_to_monotonic
from serl.cameras.config import CameraConfig

# (width, height) when the config names none; every RealSense colour sensor has it
DEFAULT_CAPTURE_SIZE = (640, 480)


def import_pyrealsense2():
    """The pyrealsense2 module, or an ImportError that says how to get it."""
    try:
        import pyrealsense2 as rs
    except ImportError as err:  # also raised when libusb is missing
        raise ImportError(
            f"RealSense cameras need pyrealsense2 ({err}); install the robot extra: pip install "
            "-e '.[robot]' "
            "(on Linux it also needs libusb-1.0: apt install libusb-1.0-0)"
        ) from err
    return rs


class RealSenseSource:
    """`FrameSource` over a pyrealsense2 pipeline. `rs` is the pyrealsense2 module (tests pass a
    fake one)."""

    def __init__(self, cfg: CameraConfig, rs=None):
        if cfg.serial is None:
            raise ValueError("a realsense camera needs 'serial'")
        self.cfg = cfg
        self.rs = rs if rs is not None else import_pyrealsense2()
        self._pipeline = None

    def open(self) -> None:
        rs, cfg = self.rs, self.cfg
        width, height = cfg.capture_size or DEFAULT_CAPTURE_SIZE
        config = rs.config()
        config.enable_device(cfg.serial)
        config.enable_stream(rs.stream.color, width, height, rs.format.rgb8, cfg.fps)
        pipeline = rs.pipeline()
        profile = pipeline.start(config)
        sensor = profile.get_device().first_color_sensor()
        if cfg.exposure is not None:
            sensor.set_option(rs.option.enable_auto_exposure, 0)
            sensor.set_option(rs.option.exposure, float(cfg.exposure))
        if cfg.white_balance is not None:
            sensor.set_option(rs.option.enable_auto_white_balance, 0)
            sensor.set_option(rs.option.white_balance, float(cfg.white_balance))
        self._pipeline = pipeline

    def grab(self, timeout_s: float) -> tuple[np.ndarray, float] | None:
        if self._pipeline is None:
            return None
        ok, frames = self._pipeline.try_wait_for_frames(max(1, int(timeout_s * 1000)))
        if not ok:
            return None
        color = frames.get_color_frame()
        if not color:
            return None
        image = np.asanyarray(color.get_data()).copy()
        return image, self._capture_time(color)

    def _capture_time(self, frame) -> float:
        """The frame's capture time on the monotonic clock: its own stamp where it is on the host's
        wall clock (global or system time domain), else its arrival."""
        domain = frame.get_frame_timestamp_domain()
        if domain in (self.rs.timestamp_domain.global_time, self.rs.timestamp_domain.system_time):
            return wall_to_monotonic(frame.get_timestamp() / 1000.0)
        return time.monotonic()

    def close(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            finally:
                self._pipeline = None
