"""Typed configuration of `FrankaEnv` (`serl/Franka-v0`), and the operator's confirmation of a fault
recovery.

Task geometry (box, reset pose), rates, action scale and cameras live in the rig's YAML
(`hardware_config`); this config says which rig, which of its cameras the policy sees, and how
episodes run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class FrankaEnvConfig:
    # rig file: server, cameras, limits, rates, reset
    hardware_config: str = "hardware_configs/sim_panda.yaml"
    cameras: tuple[str, ...] = ("front", "wrist")  # rig cameras in the observation, in this order
    image_obs: bool = True  # read the cameras; False gives the state only
    # pixels, square; each listed camera's `size` in the rig file must be this
    image_size: int = 128
    max_episode_steps: int = 100  # steps before truncation
    # a joint reset before every Nth episode (0: never), against drift in the nullspace
    joint_reset_every: int = 0
    gripper_locked: bool = False  # never send gripper commands (a task that holds its tool)
    # ROS 2 domain of the ROS cameras; None: the ROS_DOMAIN_ID environment variable
    ros_domain_id: int | None = None
    # start the simulated driver and robot server for the rig (sim rigs; tests, demos); the
    # launched rig renders only the cameras the observation reads
    launch_sim: bool = False
    # add the task object's pose to the state (simulated rigs only: privileged, for state-only
    # runs), as the scripted operator reads it (`FrankaScene.object_pose`)
    object_pose: bool = False
    # how long reset() waits for the operator to confirm a fault recovery
    recovery_timeout_s: float = 600.0
    # a reset failing with a transient robot or camera error is tried again this many times
    reset_retries: int = 3
    reset_retry_wait_s: float = 1.0  # seconds between those attempts
    # a gap this many control periods between steps is a pause: the clock restarts
    pause_periods: float = 5.0

    def __post_init__(self) -> None:
        if self.image_obs and not self.cameras:
            raise ValueError("image_obs needs at least one camera in 'cameras'")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras {self.cameras} lists a camera twice")
        if self.max_episode_steps <= 0 or self.image_size <= 0:
            raise ValueError("max_episode_steps and image_size must be positive")
        if self.reset_retries < 0 or self.reset_retry_wait_s < 0 or self.pause_periods <= 1:
            raise ValueError(
                "reset_retries and reset_retry_wait_s must be >= 0 and pause_periods > 1"
            )


def check_against_rig(cfg: FrankaEnvConfig, rig) -> None:
    """`cfg` fits the rig file `rig` (a `HardwareConfig`): each observed camera is in it at the
    observation's size, and the privileged `object_pose` comes only from a simulated rig."""
    for name in cfg.cameras if cfg.image_obs else ():
        if name not in rig.cameras:
            raise ValueError(
                f"camera {name!r} is not in {cfg.hardware_config} (cameras: "
                f"{', '.join(rig.cameras) or 'none'})"
            )
        if tuple(rig.cameras[name].size) != (cfg.image_size, cfg.image_size):
            raise ValueError(
                f"cameras.{name}.size {rig.cameras[name].size} in {cfg.hardware_config} "
                f"must be [{cfg.image_size}, {cfg.image_size}] (the observation's image size)"
            )
    if cfg.object_pose and rig.sim is None:
        raise ValueError(f"object_pose is privileged: {cfg.hardware_config} is not simulated (no "
                         "'sim' section)")


Confirm = Callable[[str], bool]  # (why the arm stopped) -> True once the operator confirms recovery


def device_confirmation(device, poll_s: float = 0.05, timeout_s: float = 600.0) -> Confirm:
    """A `Confirm` that waits for the device's "confirm_reset" control (an `InterventionDevice`);
    False on timeout."""

    def confirm(reason: str) -> bool:
        print(
            f"robot fault: {reason}\n  check the robot and its surroundings, then press "
            "confirm_reset to recover",
            flush=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "confirm_reset" in device.read().buttons:
                return True
            time.sleep(poll_s)
        return False

    return confirm


def attach_confirmation(raw, device, scripted: bool) -> None:
    """Give a FrankaEnv under `raw` its fault-recovery confirmation: the device's "confirm_reset",
    or, for the scripted operator (which stands in for the person in simulation), an immediate yes.
    Other envs: nothing."""
    env = raw.unwrapped
    if device is None or not hasattr(env, "confirm_recovery"):
        return
    env.confirm_recovery = (
        (lambda reason: True)
        if scripted
        else device_confirmation(device, timeout_s=env.cfg.recovery_timeout_s)
    )
