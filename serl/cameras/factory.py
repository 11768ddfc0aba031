"""Build a rig's cameras from its `cameras:` map: one `Camera` per entry, with the driver its type
names."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from serl.cameras.base import Camera, FrameSource
from serl.cameras.config import CameraConfig


def make_source(cfg: CameraConfig, ros_host=None) -> FrameSource:
    """The driver for one camera config (a ROS camera needs the rig's `RosImageHost`)."""
    if cfg.type == "opencv":
        from serl.cameras.opencv import OpenCVSource

        return OpenCVSource(cfg)
    if cfg.type == "realsense":
        from serl.cameras.realsense import RealSenseSource

        return RealSenseSource(cfg)
    if cfg.type == "ros":
        from serl.cameras.ros import RosImageSource

        if ros_host is None:
            raise ValueError("a ros camera needs a RosImageHost")
        return RosImageSource(cfg, ros_host)
    raise ValueError(f"unknown camera type {cfg.type!r}")


class CameraSet:
    """A rig's cameras by name; `read()` gives every image and its capture time; `close()` releases
    them all (and the ROS node they share). Built by `open_cameras`."""

    def __init__(self, cameras: dict[str, Camera], ros_host=None):
        self.cameras, self.ros_host = cameras, ros_host

    def read(self) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        images, stamps = {}, {}
        for name, camera in self.cameras.items():
            images[name], stamps[name] = camera.read()
        return images, stamps

    def close(self) -> None:
        for camera in self.cameras.values():
            camera.close()
        if self.ros_host is not None:
            self.ros_host.close()
            self.ros_host = None


def open_cameras(configs: Mapping[str, CameraConfig], max_frame_age_s: float, names=None,
                 ros_domain_id: int | None = None, startup_s: float = 10.0) -> CameraSet:
    """Open the cameras named (all when `names` is None) and wait for each one's first frame (at
    most `startup_s`); anything already opened is closed on failure."""
    names = list(configs) if names is None else list(names)
    missing = [n for n in names if n not in configs]
    if missing:
        raise ValueError(
            f"camera(s) {missing} are not in the rig's cameras ({', '.join(configs) or 'none'})"
        )
    ros_host = None
    if any(configs[n].type == "ros" for n in names):
        from serl.cameras.ros import RosImageHost

        ros_host = RosImageHost(ros_domain_id)
    out = CameraSet({}, ros_host)
    try:
        for name in names:
            out.cameras[name] = Camera(
                name,
                make_source(configs[name], ros_host),
                configs[name],
                max_frame_age_s,
                startup_s=startup_s,
            )
        for camera in out.cameras.values():
            camera.wait_first_frame()
    except BaseException:  # nothing opened so far is left running
        out.close()
        raise
    return out
