"""The one `Camera` every driver sits behind: a background reader keeps the newest processed frame,
so a read never blocks the control loop for longer than the camera's timeout, old frames are
refused, and a frozen driver is reinitialised (and reported clearly once it keeps failing).

A driver is a `FrameSource`: open it, grab raw RGB frames with their capture times, close it.
Everything else (threading, crop and resize, frame age, freeze recovery) is here, once, for all
drivers.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import cv2
import numpy as np

from serl.cameras.config import CameraConfig

log = logging.getLogger(__name__)


class CameraError(RuntimeError):
    """A camera cannot deliver a usable frame (not opened, frozen after reinitialising, bad
    frame)."""


class StaleFrameError(CameraError):
    """The newest frame is older than the rig's maximum frame age; it is refused, never used
    silently."""


class FrameSource(Protocol):
    """A camera driver. `grab` may block up to `timeout_s`; it runs on the camera's reader thread
    only."""

    def open(self) -> None:
        """Connect to the device and apply the fixed settings (exposure, white balance); raise on
        failure."""

    def grab(self, timeout_s: float) -> tuple[np.ndarray, float] | None:
        """The next raw frame (uint8 H x W x 3, RGB) and its capture time (time.monotonic clock), or
        None."""

    def close(self) -> None:
        """Release the device; safe to call twice."""


def process_frame(raw: np.ndarray, cfg: CameraConfig) -> np.ndarray:
    """Crop (pixels of the raw frame), then resize to `cfg.size` (width, height): uint8 H x W x
    3."""
    if raw.dtype != np.uint8 or raw.ndim != 3 or raw.shape[2] != 3:
        raise CameraError(f"frame must be uint8 H x W x 3, got {raw.dtype} {raw.shape}")
    if cfg.crop is not None:
        c, (h, w) = cfg.crop, raw.shape[:2]
        if c.x + c.width > w or c.y + c.height > h:
            raise CameraError(
                f"crop x={c.x} y={c.y} width={c.width} height={c.height} does not fit the "
                f"{w}x{h} frame"
            )
        raw = raw[c.y : c.y + c.height, c.x : c.x + c.width]
    width, height = cfg.size
    if raw.shape[1] != width or raw.shape[0] != height:
        shrink = raw.shape[1] >= width and raw.shape[0] >= height
        raw = cv2.resize(
            raw, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        )
    return np.ascontiguousarray(raw)


class Camera:
    """A `FrameSource` read on a background thread. `read()` returns the newest (image, capture
    time) once its age is within `max_frame_age_s`, waiting at most `cfg.timeout_s` for one;
    otherwise it raises.

    Freeze handling: when no frame arrives for `cfg.timeout_s` the reader closes and reopens the
    source; after `max_reinit` reinitialisations in a row without a frame the camera is failed and
    every read says so.
    """

    def __init__(
        self,
        name: str,
        source: FrameSource,
        cfg: CameraConfig,
        max_frame_age_s: float,
        max_reinit: int = 3,
        startup_s: float = 10.0,
    ):
        if max_frame_age_s <= 0:
            raise ValueError(
                f"camera {name!r}: max_frame_age_s must be positive, got {max_frame_age_s}"
            )
        self.name, self.source, self.cfg = name, source, cfg
        self.max_frame_age_s = max_frame_age_s
        self.max_reinit = max_reinit
        # allowed before the first frame (device start, discovery)
        self.startup_s = max(startup_s, cfg.timeout_s)
        self.reinits = 0  # reinitialisations so far (all time), for logs and tests
        self.frames = 0  # frames received so far
        self._cond = threading.Condition()
        self._latest: tuple[np.ndarray, float] | None = None
        self._failure: str | None = None
        self._stop = threading.Event()
        try:
            source.open()
        except Exception as err:
            raise CameraError(f"camera {name!r} ({cfg.type}) could not be opened: {err}") from err
        self._thread = threading.Thread(target=self._run, name=f"camera-{name}", daemon=True)
        self._thread.start()

    # ---------- Camera ----------
    def read(self) -> tuple[np.ndarray, float]:
        """(image uint8 (height, width, 3) after crop and resize, capture time on the time.monotonic
        clock)."""
        deadline = time.monotonic() + self.cfg.timeout_s
        with self._cond:
            while True:
                if self._failure is not None:
                    raise CameraError(f"camera {self.name!r}: {self._failure}")
                now = time.monotonic()
                if self._latest is not None and now - self._latest[1] <= self.max_frame_age_s:
                    return self._latest
                if now >= deadline or self._stop.is_set():
                    break
                self._cond.wait(deadline - now)
        if self._latest is None:
            raise CameraError(f"camera {self.name!r}: no frame within {self.cfg.timeout_s} s")
        age = time.monotonic() - self._latest[1]
        raise StaleFrameError(
            f"camera {self.name!r}: newest frame is {age:.3f} s old, more than the rig's "
            f"max_frame_age {self.max_frame_age_s} s"
        )

    def wait_first_frame(self) -> None:
        """Block until the first frame arrived (at most `startup_s`); CameraError if it did not."""
        deadline = time.monotonic() + self.startup_s
        with self._cond:
            while self._latest is None and self._failure is None and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            if self._failure is not None:
                raise CameraError(f"camera {self.name!r}: {self._failure}")
            if self._latest is None:
                raise CameraError(
                    f"camera {self.name!r}: no frame within {self.startup_s:.0f} s of opening "
                    f"({self.cfg.type} {self.cfg.topic or self.cfg.serial or self.cfg.device})"
                )

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=self.cfg.timeout_s + 2.0)
        self.source.close()

    @property
    def failed(self) -> str | None:
        """Why the camera gave up, or None while it works."""
        return self._failure

    # ---------- reader thread ----------
    def _run(self) -> None:
        last_frame = time.monotonic()
        failures = 0  # reinitialisations in a row without a frame since
        poll = min(self.cfg.timeout_s, 0.1)
        while not self._stop.is_set():
            try:
                got = self.source.grab(poll)
            except CameraError as err:  # a bad frame format: reconnecting will not fix it
                self._fail(str(err))
                return
            # a driver error counts as a frozen camera; the reinit below handles it
            except Exception as err:
                log.warning("camera %r: grab failed: %s", self.name, err)
                got, last_frame = None, min(last_frame, time.monotonic() - self.cfg.timeout_s)
            if got is not None:
                self._publish(*got)
                last_frame, failures = time.monotonic(), 0
                continue
            allowed = self.cfg.timeout_s if self.frames else self.startup_s
            if time.monotonic() - last_frame < allowed or self._stop.is_set():
                continue
            if failures >= self.max_reinit:
                self._fail(
                    f"frozen: no frame for {self.cfg.timeout_s} s after {failures} "
                    "reinitialisations"
                )
                return
            failures += 1
            self._reinit()
            last_frame = time.monotonic()

    def _publish(self, raw: np.ndarray, stamp: float) -> None:
        try:
            image = process_frame(raw, self.cfg)
        except CameraError as err:
            self._fail(str(err))
            return
        with self._cond:
            self._latest = (image, float(stamp))
            self.frames += 1
            self._cond.notify_all()

    def _reinit(self) -> None:
        self.reinits += 1
        log.warning(
            "camera %r: no frame for %.2f s, reinitialising (%d)",
            self.name,
            self.cfg.timeout_s,
            self.reinits,
        )
        try:
            self.source.close()
            self.source.open()
        except Exception as err:  # the next round counts it again
            log.warning("camera %r: reopening failed: %s", self.name, err)

    def _fail(self, reason: str) -> None:
        log.error("camera %r: %s", self.name, reason)
        with self._cond:
            self._failure = reason
            self._cond.notify_all()
        self._stop.set()
