"""Cameras behind one interface: OpenCV, RealSense, ROS 2 image topics. `open_cameras(rig.cameras,
...)` builds a rig's; `Camera.read()` gives (image after crop and resize, capture time on the
monotonic clock)."""

from serl.cameras.base import Camera, CameraError, FrameSource, StaleFrameError, process_frame
from serl.cameras.factory import CameraSet, make_source, open_cameras

__all__ = [
    "Camera",
    "CameraError",
    "CameraSet",
    "FrameSource",
    "StaleFrameError",
    "make_source",
    "open_cameras",
    "process_frame",
]
