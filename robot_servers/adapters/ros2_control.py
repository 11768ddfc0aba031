"""Blocking calls to ros2_control's controller manager for the franka_ros2 adapter (run in a worker
thread: they wait on futures the server's executor completes).

After an FCI error franka_hardware returns ERROR; the controller manager then moves the hardware
component to unconfigured and deactivates every controller that uses it, broadcasters included
(controller_manager.cpp: "TODO(destogl): do auto-start of broadcasters"). Re-activating takes
`set_hardware_component_state` (the component, `FrankaHardwareInterface` with the arm prefix, found
through `list_hardware_components`) and `switch_controller`. Service types: controller_manager_msgs
(ros2_control, jazzy 4.x), which PyPI does not carry: a sourced ROS 2 workspace provides them.
"""

from __future__ import annotations

import time
from typing import Any

from rclpy.node import Node

from serl.robot.hardware_config import HardwareConfig

HARDWARE_PLUGIN = "franka_hardware/FrankaHardwareInterface"
CALL_TIMEOUT_S = 5.0  # s for one controller-manager call (a hardware activation reconnects)


def wait(future, timeout_s: float, what: str):
    """The result of an rclpy or concurrent future, waited for by polling (another thread spins)."""
    deadline = time.monotonic() + timeout_s
    while not future.done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not finish within {timeout_s:.0f} s")
        time.sleep(0.01)
    return future.result()


class ControllerManager:
    """The services of `ros.controller_manager` the adapter uses."""

    def __init__(self, node: Node, cfg: HardwareConfig):
        from controller_manager_msgs import srv
        from lifecycle_msgs.msg import State

        self.srv, self.state_type, self.cfg = srv, State, cfg
        cm = cfg.ros.controller_manager
        self.clients = {
            name: node.create_client(getattr(srv, kind), f"{cm}/{name}")
            for name, kind in (
                ("switch_controller", "SwitchController"),
                ("list_controllers", "ListControllers"),
                ("list_hardware_components", "ListHardwareComponents"),
                ("set_hardware_component_state", "SetHardwareComponentState"),
            )
        }

    def call(self, name: str, request: Any, timeout_s: float = CALL_TIMEOUT_S):
        client = self.clients[name]
        if not client.wait_for_service(timeout_sec=2.0):
            raise RuntimeError(f"{client.srv_name} is not available")
        return wait(client.call_async(request), timeout_s, client.srv_name)

    def controllers(self) -> dict[str, tuple[str, str]]:
        """name -> (state, type) of every loaded controller."""
        response = self.call("list_controllers", self.srv.ListControllers.Request())
        return {c.name: (c.state, c.type) for c in response.controller}

    def activate_hardware(self) -> list[str]:
        """Set every Franka arm hardware component that is not active to active; their names."""
        response = self.call(
            "list_hardware_components", self.srv.ListHardwareComponents.Request()
        )
        franka = [
            c for c in response.component
            if getattr(c, "plugin_name", "") == HARDWARE_PLUGIN
            or c.name.endswith("FrankaHardwareInterface")
        ]
        if not franka:
            names = [c.name for c in response.component]
            raise RuntimeError(f"no FrankaHardwareInterface among the hardware components {names}")
        active = self.state_type.PRIMARY_STATE_ACTIVE
        woken = []
        for component in franka:
            if component.state.id == active:
                continue
            request = self.srv.SetHardwareComponentState.Request(name=component.name)
            request.target_state.id, request.target_state.label = active, "active"
            if not self.call("set_hardware_component_state", request).ok:
                raise RuntimeError(f"the controller manager could not activate {component.name}")
            woken.append(component.name)
        return woken

    def switch(self, activate: list[str], deactivate: list[str]) -> None:
        request = self.srv.SwitchController.Request(
            activate_controllers=activate, deactivate_controllers=deactivate,
            strictness=self.srv.SwitchController.Request.STRICT,
        )
        response = self.call("switch_controller", request)
        if not response.ok:
            detail = getattr(response, "message", "")
            raise RuntimeError(
                f"the controller manager refused to activate {activate} / deactivate "
                f"{deactivate}{': ' + detail if detail else ''}"
            )
