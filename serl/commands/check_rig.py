"""`serl check-rig CONFIG`: is the rig ready? Validates the rig file (an error names the key), then
asks the robot server for its health, reads a frame from each camera (and its age), enumerates
SpaceMice, and prints a table of what is up and what is not. Exit status 0 when everything required
is up, 1 when something is down, 2 for a bad rig file."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from serl.robot.hardware_config import HardwareConfig, HardwareConfigError, load_hardware_config


@dataclass(frozen=True)
class Check:
    name: str  # what was checked, e.g. "camera front"
    up: bool  # it works
    detail: str  # what was seen, or why it is down
    required: bool = True  # a down required part fails the check


def check_robot(rig: HardwareConfig, timeout_s: float) -> Check:
    return check_robot_parts(rig, timeout_s)[0]


def check_robot_parts(rig: HardwareConfig, timeout_s: float) -> list[Check]:
    """The robot server, then (from its `health`) the arm and the gripper."""
    from serl.robot.client import RobotClient, RobotError
    from serl.transport.keys import ActorCurve

    r = rig.robot
    # a CURVE server never answers a client without keys
    curve = (ActorCurve(r.curve_client_secret_key, r.curve_server_public_key)
             if r.curve_client_secret_key is not None else None)
    try:
        client = RobotClient(r.address, timeout_s=timeout_s, curve=curve)
    except (OSError, ValueError) as err:  # unreadable key files
        return [Check("robot server", False,
                      f"{r.address}: cannot use the rig's CURVE keys: {err}")]
    try:
        health = client.health()
    except RobotError as err:
        return [Check("robot server", False, f"{r.address}: {err}")]
    finally:
        client.close()
    server = judge_health(health, r.address, r.state_timeout_s)
    return [server, *judge_arm(health, server.up)]


def judge_arm(health: dict, server_up: bool) -> list[Check]:
    """The arm (up with the server's fresh state; for libfranka its robot mode and the end-effector
    frame libfranka reports, which tcp_pose already includes) and the gripper."""
    arm = health.get("arm") or {}
    parts = [f"adapter {health.get('adapter', '?')}"]
    if "robot_mode" in arm:
        parts.append(f"robot mode {arm['robot_mode']}")
    if arm.get("ee_offset_m") is not None:
        offset = ", ".join(f"{v:.4f}" for v in arm["ee_offset_m"])
        parts.append(f"end-effector frame F_T_EE ({offset}) m from the flange")
    if arm.get("libfranka"):
        parts.append(f"franky-control {arm.get('franky')}, libfranka {arm['libfranka']}")
    if arm.get("connect_error"):
        parts.append(f"connect: {arm['connect_error']}")
    gripper_up = bool(arm.get("gripper_up"))
    width = arm.get("gripper_width")
    gripper = (f"width {1e3 * width:.1f} mm" if isinstance(width, float | int) else
               "fingers reported" if gripper_up else "no gripper state")
    if arm.get("gripper_result"):
        gripper += f", last: {arm['gripper_result']}"
    return [Check("arm", server_up, ", ".join(parts)), Check("gripper", gripper_up, gripper)]


def judge_health(health: dict, address: str, state_timeout_s: float) -> Check:
    """Up only when the server has fresh robot state (a server that never heard from the driver or
    controllers answers `health` too) and is not in fault; the server's `reason` says why it holds
    or stopped."""
    mode, age = health.get("mode", "?"), health.get("state_age_s")
    parts = [address, f"mode {mode}"]
    if health.get("reason"):
        parts.append(f"reason: {health['reason']}")
    fresh = bool(health.get("has_state")) and isinstance(age, float | int) and age < state_timeout_s
    if not health.get("has_state"):
        parts.append(
            "no robot state yet (are the driver or controllers running, on this ROS domain?)"
        )
    elif isinstance(age, float | int):
        parts.append(
            f"state age {1e3 * age:.0f} ms"
            + ("" if fresh else f" (stale: over {state_timeout_s} s)")
        )
    return Check("robot server", fresh and mode in ("ok", "hold"), ", ".join(parts))


def check_cameras(rig: HardwareConfig, wait_s: float, ros_domain_id: int | None) -> list[Check]:
    from serl.cameras import Camera, CameraError, make_source

    results, host = [], None
    if any(c.type == "ros" for c in rig.cameras.values()):
        from serl.cameras.ros import RosImageHost

        host = RosImageHost(ros_domain_id, node_name="serl_check_rig")
    try:
        for name, cfg in rig.cameras.items():
            label = f"camera {name} ({cfg.type} {cfg.topic or cfg.serial or cfg.device})"
            try:
                camera = Camera(
                    name, make_source(cfg, host), cfg, rig.control.max_frame_age_s, startup_s=wait_s
                )
            except (CameraError, ImportError, ValueError, OSError) as err:
                results.append(Check(label, False, str(err)))
                continue
            try:
                camera.wait_first_frame()
                image, stamp = camera.read()
                age_ms = 1e3 * (time.monotonic() - stamp)
                results.append(
                    Check(
                        label, True, f"{image.shape[1]}x{image.shape[0]} frame, {age_ms:.0f} ms old"
                    )
                )
            except CameraError as err:
                results.append(Check(label, False, str(err)))
            finally:
                camera.close()
    finally:
        if host is not None:
            host.close()
    return results


def check_spacemouse(required: bool) -> Check:
    """Enumerate (never open: a running actor may hold it) the HID devices that pyspacemouse's table
    knows."""
    try:
        import pyspacemouse

        from serl.devices.spacemouse import describe_hid, system_hid_devices

        specs = pyspacemouse.get_device_specs()
        found = list(system_hid_devices())
    except (ImportError, RuntimeError, OSError) as err:
        return Check("spacemouse", False, f"cannot enumerate HID devices: {err}", required)
    mice = [f"{name}: {describe_hid(hid)}" for hid in found for name, spec in specs.items()
            if (hid.vendor_id, hid.product_id) == (spec.vendor_id, spec.product_id)]
    if not mice:
        return Check(
            "spacemouse", False, f"no supported SpaceMouse among {len(found)} HID devices", required
        )
    return Check("spacemouse", True, "; ".join(mice), required)


def format_table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    rows = [f"{'part':<{width}}  status  detail"]
    for c in checks:
        status = "up" if c.up else ("DOWN" if c.required else "down")
        rows.append(f"{c.name:<{width}}  {status:<6}  {c.detail}")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl check-rig", description=__doc__)
    parser.add_argument("config", help="rig file, e.g. hardware_configs/sim_panda.yaml")
    parser.add_argument(
        "--wait", type=float, default=3.0, help="seconds to wait for each camera's first frame"
    )
    parser.add_argument(
        "--require-spacemouse", action="store_true", help="a missing SpaceMouse fails the check"
    )
    parser.add_argument(
        "--ros-domain-id", type=int, default=None, help="ROS 2 domain (default: ROS_DOMAIN_ID)"
    )
    args = parser.parse_args(argv)
    try:
        rig = load_hardware_config(args.config)
    except HardwareConfigError as err:
        print(f"serl check-rig: {err}")
        return 2
    checks = [Check("rig file", True, f"{args.config}: valid ({len(rig.cameras)} cameras)")]
    checks += check_robot_parts(rig, rig.robot.request_timeout_s)
    checks += check_cameras(rig, args.wait, args.ros_domain_id)
    checks.append(check_spacemouse(args.require_spacemouse))
    print(format_table(checks))
    down = [c.name for c in checks if c.required and not c.up]
    print(f"\nrig is {'NOT ready: ' + ', '.join(down) + ' down' if down else 'ready'}")
    return 1 if down else 0
