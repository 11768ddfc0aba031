"""The simulated arm behind the ROS driver, without ROS: seeded task resets, faults that stop
tracking, live gains."""

from pathlib import Path

import numpy as np
import pytest

from robot_servers.sim_arm import SimArm
from serl.robot.hardware_config import load_hardware_config

CFG = load_hardware_config(
    Path(__file__).resolve().parents[2] / "hardware_configs" / "sim_panda.yaml"
)


@pytest.mark.timeout(60)
def test_task_resets_are_seeded():
    first, second = SimArm(CFG), SimArm(CFG)
    draws = [(first.reset_task()["pos"], second.reset_task()["pos"]) for _ in range(3)]
    assert all(a == b for a, b in draws) and draws[0][0] != draws[1][0]
    other = SimArm(CFG.model_copy(update={"sim": CFG.sim.model_copy(update={"seed": 7})}))
    assert other.reset_task()["pos"] != draws[0][0]


@pytest.mark.timeout(60)
def test_a_fault_stops_tracking_until_errors_are_cleared():
    arm = SimArm(CFG)
    start = arm.read()
    arm.inject_fault("reflex")
    away = start.pos + np.array([0.0, 0.05, 0.0])
    assert not arm.set_equilibrium(away, start.quat)  # ignored in fault
    for _ in range(50):
        arm.advance(0.01, 0.0)
    assert arm.read().fault == "reflex" and np.linalg.norm(arm.read().pos - start.pos) < 0.002
    arm.clear_errors()
    # tracking restarts at the measured pose, not at the target sent during the fault
    for _ in range(50):
        arm.advance(0.01, 0.0)
    assert arm.read().fault is None and np.linalg.norm(arm.read().pos - start.pos) < 0.002
    assert arm.set_equilibrium(away, start.quat)
    for _ in range(100):
        arm.advance(0.01, 0.0)
    assert np.linalg.norm(arm.read().pos - away) < 0.003


@pytest.mark.timeout(60)
def test_gains_change_while_running():
    arm = SimArm(CFG)
    arm.set_gains(translational_stiffness=500.0, rotational_damping_ratio=1.5)
    assert arm.sim.gains.translational_stiffness == 500.0
    assert np.allclose(arm.sim._stiffness[:3], 500.0) and np.isclose(
        arm.sim._damping[0], 2 * 2.0 * np.sqrt(500.0)
    )
