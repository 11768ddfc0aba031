"""The validated description of one camera in a hardware config (`hardware_configs/*.yaml`,
`cameras:` map).

Image processing order: capture (fixed exposure and white balance) -> crop (pixels of the raw frame)
-> resize."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Crop(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int = Field(ge=0, description="left column of the crop in the raw frame")
    y: int = Field(ge=0, description="top row of the crop in the raw frame")
    width: int = Field(gt=0, description="crop width in pixels")
    height: int = Field(gt=0, description="crop height in pixels")


class CameraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["opencv", "realsense", "ros"] = Field(
        description="driver: OpenCV device, RealSense, ROS 2 topic"
    )
    serial: str | None = Field(None, description="RealSense serial number")
    device: int | str | None = Field(None, description="OpenCV device index or path")
    topic: str | None = Field(None, description="ROS 2 sensor_msgs/Image topic")
    capture_size: tuple[int, int] | None = Field(
        None, description="(width, height) requested from the driver"
    )
    fps: int = Field(30, gt=0, le=120, description="capture rate requested from the driver")
    crop: Crop | None = Field(None, description="region of the raw frame kept before resizing")
    size: tuple[int, int] = Field(
        (128, 128), description="(width, height) of the image the policy sees"
    )
    exposure: float | None = Field(
        None, gt=0, description="fixed exposure (driver units); None: driver default"
    )
    white_balance: float | None = Field(
        None, gt=0, description="fixed white balance in kelvin; None: default"
    )
    timeout_s: float = Field(
        1.0, gt=0, le=10, description="no frame for this long: the camera is frozen"
    )

    @model_validator(mode="after")
    def _source_matches_type(self) -> CameraConfig:
        needed = {"opencv": "device", "realsense": "serial", "ros": "topic"}[self.type]
        if getattr(self, needed) is None:
            raise ValueError(f"a {self.type} camera needs '{needed}'")
        if min(self.size) <= 0:
            raise ValueError(f"size {self.size} must be positive")
        return self
