"""OpenCV (`cv2.VideoCapture`) camera driver: a USB/V4L2 device by index or path, with exposure and
white balance fixed from the config so the images the policy trained on keep their look."""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np

from serl.cameras.config import CameraConfig

# V4L2 through OpenCV: CAP_PROP_AUTO_EXPOSURE takes 1 for manual and 3 for automatic exposure.
V4L2_MANUAL_EXPOSURE = 1


class OpenCVSource:
    """`FrameSource` over `cv2.VideoCapture`. `capture_factory` builds the capture (tests pass a
    fake device with the same methods: isOpened, set, read, release)."""

    def __init__(
        self, cfg: CameraConfig, capture_factory: Callable[[int | str], object] = cv2.VideoCapture
    ):
        if cfg.device is None:
            raise ValueError("an opencv camera needs 'device' (index or path)")
        self.cfg = cfg
        self.capture_factory = capture_factory
        self._cap = None

    def open(self) -> None:
        device = (
            int(self.cfg.device)
            if isinstance(self.cfg.device, str) and self.cfg.device.isdigit()
            else self.cfg.device
        )
        cap = self.capture_factory(device)
        if not cap.isOpened():
            raise OSError(
                f"cv2.VideoCapture({device!r}) did not open (is the camera plugged in and free?)"
            )
        for prop, value in self.settings():
            # not every backend honours every property; check-rig shows the result
            cap.set(prop, value)
        self._cap = cap

    def settings(self) -> list[tuple[int, float]]:
        """(property, value) pairs applied at open, in order: size, rate, then fixed exposure and
        white balance."""
        cfg, out = self.cfg, []
        if cfg.capture_size is not None:
            out += [
                (cv2.CAP_PROP_FRAME_WIDTH, cfg.capture_size[0]),
                (cv2.CAP_PROP_FRAME_HEIGHT, cfg.capture_size[1]),
            ]
        out.append((cv2.CAP_PROP_FPS, cfg.fps))
        if cfg.exposure is not None:
            out += [
                (cv2.CAP_PROP_AUTO_EXPOSURE, V4L2_MANUAL_EXPOSURE),
                (cv2.CAP_PROP_EXPOSURE, cfg.exposure),
            ]
        if cfg.white_balance is not None:
            out += [(cv2.CAP_PROP_AUTO_WB, 0), (cv2.CAP_PROP_WB_TEMPERATURE, cfg.white_balance)]
        return out

    def grab(self, timeout_s: float) -> tuple[np.ndarray, float] | None:
        if self._cap is None:
            return None
        # Blocks until the device delivers; a stalled V4L2 device fails the read after the backend's
        # own select timeout, and the Camera then reopens it. Reads by the control loop never wait
        # on this (reader thread).
        ok, frame = self._cap.read()
        stamp = time.monotonic()
        if not ok or frame is None:
            return None
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), stamp

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
