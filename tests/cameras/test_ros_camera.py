"""ROS 2 image-topic cameras against a real rclpy publisher on a private domain: frames, capture
stamps from the header, the frame-age check, a bad encoding refused by name, and clean teardown."""

import os
import threading
import time

import numpy as np
import pytest

from serl.cameras import CameraError, StaleFrameError, open_cameras
from serl.cameras.config import CameraConfig

# private to this test process: other engineers' nodes never cross in
DOMAIN = 50 + os.getpid() % 50


class Publisher:
    """A real rclpy node publishing sensor_msgs/Image on a timer thread, stamped `lag_s`
    before publishing."""

    def __init__(self, topic: str, encoding: str = "rgb8", lag_s: float = 0.0,
                 period_s: float = 0.02):
        import rclpy
        from rclpy.context import Context
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import Image

        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=DOMAIN,
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("fake_camera", context=self.ctx,
                                      start_parameter_services=False)
        self.pub = self.node.create_publisher(Image, topic, 5)
        self.encoding, self.lag_s, self.period_s = encoding, lag_s, period_s
        self.frame = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
        self.running = threading.Event()
        self.running.set()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        from sensor_msgs.msg import Image

        while self.running.is_set():
            msg = Image(height=48, width=64, encoding=self.encoding, step=64 * 3,
                        data=self.frame.tobytes())
            t = time.time() - self.lag_s
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int((t % 1) * 1e9)
            self.pub.publish(msg)
            time.sleep(self.period_s)

    def close(self):
        self.running.clear()
        self.thread.join()
        self.node.destroy_node()
        self.ctx.try_shutdown()


def camera_cfg(topic, **kw):
    return CameraConfig(type="ros", topic=topic, size=(64, 48), timeout_s=kw.pop("timeout_s", 1.0),
                        **kw)


@pytest.mark.timeout(30)
def test_ros_camera_reads_frames_with_header_stamps():
    pub = Publisher("/cam/front", lag_s=0.05)
    cfgs = {"front": camera_cfg("/cam/front"), "wrist": camera_cfg("/cam/unused")}
    cams = open_cameras(cfgs, 1.0, names=["front"], ros_domain_id=DOMAIN)
    try:
        # open_cameras waited for the first frame (DDS discovery takes a moment)
        images, stamps = cams.read()
        np.testing.assert_array_equal(images["front"], pub.frame)
        age = time.monotonic() - stamps["front"]
        # the header's capture time (0.05 s before publishing), not the arrival time
        assert 0.04 < age < 1.0
    finally:
        cams.close()
        pub.close()
    assert not cams.cameras["front"]._thread.is_alive()


@pytest.mark.timeout(30)
def test_ros_frames_older_than_the_max_age_are_refused():
    pub = Publisher("/cam/old", lag_s=0.3)  # every frame arrives already 0.3 s old
    cams = open_cameras({"front": camera_cfg("/cam/old", timeout_s=0.5)}, 0.1, ros_domain_id=DOMAIN)
    try:
        assert cams.cameras["front"].frames > 0
        stale = r"newest frame is 0\.[3-9]\d* s old, more than the rig's max_frame_age"
        with pytest.raises(StaleFrameError, match=stale):
            cams.read()
    finally:
        cams.close()
        pub.close()


@pytest.mark.timeout(30)
def test_unsupported_encoding_is_refused_by_name():
    pub = Publisher("/cam/depth", encoding="32FC1")
    try:
        with pytest.raises(CameraError,
                           match="topic /cam/depth: image encoding '32FC1' is not supported"):
            open_cameras({"front": camera_cfg("/cam/depth")}, 0.5, ros_domain_id=DOMAIN)
    finally:
        pub.close()


@pytest.mark.timeout(30)
def test_a_topic_nobody_publishes_fails_at_open_naming_it():
    start = time.monotonic()
    with pytest.raises(CameraError,
                       match=r"camera 'front': no frame within 1 s of opening \(ros /cam/none\)"):
        open_cameras({"front": camera_cfg("/cam/none")}, 0.5, ros_domain_id=DOMAIN,
                     startup_s=1.0)
    assert time.monotonic() - start < 3.0


@pytest.mark.timeout(10)
def test_unknown_camera_name_is_an_error():
    with pytest.raises(ValueError,
                       match=r"camera\(s\) \['side'\] are not in the rig's cameras \(front\)"):
        open_cameras({"front": camera_cfg("/x")}, 0.5, names=["side"])
