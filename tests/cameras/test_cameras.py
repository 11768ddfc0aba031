"""The Camera interface over the OpenCV and RealSense drivers (with fake devices, the hardware
cannot exist here): crop and resize, fixed settings, frame age, freeze recovery, and the error when
pyrealsense2 is missing."""

import sys
import time

import cv2
import numpy as np
import pytest
from camera_fakes import FakeRealSense, FakeVideoCapture, gradient_frame

from serl.cameras import Camera, CameraError, StaleFrameError, process_frame
from serl.cameras.config import CameraConfig
from serl.cameras.opencv import V4L2_MANUAL_EXPOSURE, OpenCVSource
from serl.cameras.realsense import RealSenseSource, import_pyrealsense2


@pytest.fixture(autouse=True)
def _fresh_fake():
    FakeVideoCapture.reset()
    yield
    FakeVideoCapture.reset()


def opencv_camera(max_age=0.5, max_reinit=3, **cfg) -> Camera:
    cfg = CameraConfig(type="opencv", device=cfg.pop("device", 0), **{"timeout_s": 0.3, **cfg})
    source = OpenCVSource(cfg, capture_factory=FakeVideoCapture)
    return Camera("front", source, cfg, max_age, max_reinit)


@pytest.mark.timeout(10)
def test_crop_then_resize_keeps_the_right_pixels():
    raw = gradient_frame(64, 48)
    cfg = CameraConfig(type="ros", topic="/x", crop={"x": 10, "y": 4, "width": 32, "height": 32},
                       size=(16, 16))
    out = process_frame(raw, cfg)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    # INTER_AREA averages each 2x2 block:
    # output (r, c) covers raw rows 4+2r..5+2r, cols 10+2c..11+2c.
    np.testing.assert_allclose(out[..., 0], np.tile(10 + 2 * np.arange(16) + 0.5, (16, 1)),
                               atol=0.51)
    np.testing.assert_allclose(out[..., 1], np.tile(4 + 2 * np.arange(16)[:, None] + 0.5, (1, 16)),
                               atol=0.51)
    same = process_frame(raw, CameraConfig(type="ros", topic="/x", size=(64, 48)))
    np.testing.assert_array_equal(same, raw)
    with pytest.raises(CameraError, match="crop x=40 .* does not fit the 64x48 frame"):
        process_frame(raw, CameraConfig(type="ros", topic="/x",
                                        crop={"x": 40, "y": 0, "width": 32, "height": 8}))


@pytest.mark.timeout(10)
def test_opencv_applies_fixed_settings_and_gives_rgb():
    cam = opencv_camera(exposure=120.0, white_balance=4500.0, capture_size=(64, 48), size=(64, 48))
    try:
        image, stamp = cam.read()
        assert 0 <= time.monotonic() - stamp < 0.5
        # BGR converted back to RGB
        np.testing.assert_array_equal(image[..., :2], gradient_frame()[..., :2])
        props = dict(FakeVideoCapture.opened[0].props)
        assert props[cv2.CAP_PROP_AUTO_EXPOSURE] == V4L2_MANUAL_EXPOSURE
        assert props[cv2.CAP_PROP_EXPOSURE] == 120.0
        assert props[cv2.CAP_PROP_AUTO_WB] == 0 and props[cv2.CAP_PROP_WB_TEMPERATURE] == 4500.0
        assert props[cv2.CAP_PROP_FRAME_WIDTH] == 64 and props[cv2.CAP_PROP_FPS] == 30
    finally:
        cam.close()
    assert FakeVideoCapture.opened[0].released


@pytest.mark.timeout(10)
def test_missing_device_is_a_clear_error():
    with pytest.raises(CameraError,
                       match=r"camera 'front' \(opencv\) could not be opened: .*did not open"):
        opencv_camera(device="missing")


@pytest.mark.timeout(10)
def test_stale_frame_is_refused_within_the_timeout():
    FakeVideoCapture.thaw_on_open = False
    cam = opencv_camera(max_age=0.05, max_reinit=100, timeout_s=0.4)
    try:
        cam.read()
        # the device stops delivering; its last frame ages
        FakeVideoCapture.frozen_devices[0] = 10**6
        time.sleep(0.1)
        start = time.monotonic()
        with pytest.raises(StaleFrameError, match=r"camera 'front': newest frame is 0\.\d+ s old, "
                                                  r"more than the rig's max_frame_age 0.05 s"):
            cam.read()
        # waited for a fresh frame, but about the timeout at most
        assert time.monotonic() - start < 0.4 + 0.3
    finally:
        cam.close()


@pytest.mark.timeout(10)
def test_frozen_camera_is_reinitialised_and_recovers():
    cam = opencv_camera(max_age=0.5, timeout_s=0.2)
    try:
        first, _ = cam.read()
        FakeVideoCapture.frozen_devices[0] = 1  # frozen until reopened once
        deadline = time.monotonic() + 3.0
        while cam.reinits == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cam.reinits == 1 and len(FakeVideoCapture.opened) == 2
        assert FakeVideoCapture.opened[0].released
        frames = cam.frames
        while cam.frames == frames and time.monotonic() < deadline:
            time.sleep(0.01)
        image, stamp = cam.read()
        assert time.monotonic() - stamp < 0.5 and cam.failed is None
        assert image[0, 0, 2] == 2  # the reopened device's frames (seed = device instance count)
    finally:
        cam.close()


@pytest.mark.timeout(10)
def test_camera_that_stays_frozen_fails_clearly():
    cam = opencv_camera(max_age=0.5, max_reinit=2, timeout_s=0.1)
    try:
        cam.read()
        FakeVideoCapture.frozen_devices[0] = 10**6
        deadline = time.monotonic() + 3.0
        while cam.failed is None and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(CameraError,
                           match="camera 'front': frozen: no frame for 0.1 s after 2 reinit"):
            cam.read()
        assert cam.reinits == 2
    finally:
        cam.close()


@pytest.mark.timeout(10)
def test_realsense_fixed_settings_and_capture_time():
    rs = FakeRealSense(delay_s=0.03)
    cfg = CameraConfig(type="realsense", serial="123", capture_size=(80, 60), exposure=50.0,
                       white_balance=4000.0, size=(40, 30))
    cam = Camera("wrist", RealSenseSource(cfg, rs=rs), cfg, max_frame_age_s=0.5)
    try:
        image, stamp = cam.read()
        assert image.shape == (30, 40, 3)
        # the device's capture stamp, not the arrival time
        assert 0.02 < time.monotonic() - stamp < 0.3
        assert ("device", "123") in rs.enabled
        assert ("stream", "color", 80, 60, "rgb8", 30) in rs.enabled
        assert rs.sensor.options == {"ae": 0, "exposure": 50.0, "awb": 0, "wb": 4000.0}
    finally:
        cam.close()
    assert rs.stopped


@pytest.mark.timeout(10)
def test_missing_pyrealsense2_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    with pytest.raises(ImportError, match=r"install the robot extra: pip install -e '\.\[robot\]'"):
        import_pyrealsense2()
    with pytest.raises(ImportError, match="pyrealsense2"):
        RealSenseSource(CameraConfig(type="realsense", serial="1"))
