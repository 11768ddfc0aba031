"""Rig files: the shipped ones load, and every kind of mistake is an error that names the key."""

from pathlib import Path

import pytest
import yaml

from serl.envs.sim.config import task_defaults
from serl.robot.hardware_config import (
    HardwareConfigError,
    load_hardware_config,
    parse_hardware_config,
)

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "hardware_configs" / "sim_panda.yaml"


def _raw() -> dict:
    return yaml.safe_load(SIM.read_text())


@pytest.mark.timeout(30)
def test_sim_rig_matches_the_simulated_pick_cube_task():
    cfg = load_hardware_config(SIM)
    task = task_defaults("pick_cube")
    assert cfg.safety.limits() == task.safety
    assert cfg.reset.tcp_xyz == task.reset_tcp_xyz and cfg.reset.xy_range == task.reset_tcp_xy_range
    assert (cfg.control.action_scale_xyz, cfg.control.action_scale_rot) == (task.action_scale_xyz,
                                                                          task.action_scale_rot)
    assert cfg.control.rate_hz == task.control_hz and cfg.control.watchdog_s == 0.25
    assert {n: (c.type, c.size) for n, c in cfg.cameras.items()} == {"front": ("ros", (128, 128)),
                                                                    "wrist": ("ros", (128, 128))}


@pytest.mark.timeout(30)
def test_real_rig_template_loads():
    cfg = load_hardware_config(ROOT / "hardware_configs" / "franka_fr3_template.yaml")
    assert cfg.robot.adapter == "libfranka" and len(cfg.cameras) == 2
    assert all(c.type == "realsense" for c in cfg.cameras.values())


def _error(raw: dict) -> str:
    with pytest.raises(HardwareConfigError) as err:
        parse_hardware_config(raw, "rig.yaml")
    return str(err.value)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            lambda r: r["safety"].update(box_maxx=[1, 1, 1]),
            "safety.box_maxx: Extra inputs are not permitted",
        ),
        (lambda r: r["control"].update(watchdog_s=-0.1), "control.watchdog_s"),
        (lambda r: r["safety"].update(box_max=[0.7, 0.25]), "safety.box_max"),
        (
            lambda r: r["safety"].update(box_min=[0.3, -0.25, 0.5]),
            "box_min[2] = 0.5 must be below box_max[2]",
        ),
        (lambda r: r["cameras"]["front"].update(topic=None), "cameras.front"),
        (lambda r: r["cameras"]["wrist"].update(fps=1000), "cameras.wrist.fps"),
        (
            lambda r: r["impedance"].update(translational_stiffness=9000.0),
            "translational_stiffness = 9000.0",
        ),
        (
            lambda r: r["impedance"].update(translational_stiffness_range=[100.0, 1e6]),
            "impedance: Value error, range of translational_stiffness (100.0, 1000000.0) goes "
            "past the hard limits",
        ),
        (
            lambda r: r["impedance"].update(rotational_stiffness_range=[10.0, 1000.0]),
            "range of rotational_stiffness (10.0, 1000.0) goes past the hard limits [0.0, 300.0]",
        ),
        (
            lambda r: r["impedance"].update(damping_ratio_range=[0.01, 3.0]),
            "range of translational_damping_ratio (0.01, 3.0) goes past the hard limits [0.1, 4.0]",
        ),
        (lambda r: r["robot"].update(address="tcp://0.0.0.0:5600"), "set allow_remote: true"),
        (lambda r: r["robot"].update(address="localhost:5600"), "must look like tcp://HOST:PORT"),
        (lambda r: r["reset"].update(tcp_xyz=[0.9, 0.0, 0.2]), "reset.tcp_xyz"),
        (lambda r: r["sim"].update(state_rate_hz=50.0), "sim.state_rate_hz"),
        (lambda r: r.update(extra_section={}), "extra_section: Extra inputs are not permitted"),
        (lambda r: r.pop("safety"), "safety: Field required"),
    ],
)
def test_mistakes_name_the_key(edit, expected):
    raw = _raw()
    edit(raw)
    message = _error(raw)
    assert message.startswith("rig.yaml: ") and expected in message, message


@pytest.mark.timeout(30)
def test_unreadable_files_say_so(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("robot: [unclosed\n")
    with pytest.raises(HardwareConfigError, match="bad.yaml: not valid YAML"):
        load_hardware_config(bad)
    with pytest.raises(HardwareConfigError, match="cannot read"):
        load_hardware_config(tmp_path / "missing.yaml")
    bad.write_text("- a list\n")
    with pytest.raises(HardwareConfigError, match="expected a mapping"):
        load_hardware_config(bad)
    remote = _raw()
    remote["robot"].update(address="tcp://10.0.0.5:5600", allow_remote=True)
    with pytest.raises(HardwareConfigError, match="without CURVE anyone who reaches it"):
        parse_hardware_config(remote)
    remote["robot"].update(curve_server_secret_key="keys/learner/learner.key_secret",
                           curve_authorized_keys_dir="keys/learner/authorized")
    assert parse_hardware_config(remote).robot.address == "tcp://10.0.0.5:5600"
