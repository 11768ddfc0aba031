"""The libfranka adapter's connection, without a rig: real libfranka (franky) traffic to a robot
that answers with another robot server version, to no robot at all, and the conversions of the rig
file's limits and gains."""

from __future__ import annotations

import math
import socket
import struct
import threading

import franky
import numpy as np
import pytest
import yaml
from rig_helpers import ROOT

from robot_servers.adapters import franky_link as fl
from robot_servers.launch import free_fci_host
from serl.robot.hardware_config import parse_hardware_config
from serl.robot.libfranka_config import LibfrankaSection


def _old_robot(host: str, server_version: int) -> threading.Thread:
    """A control unit on robot server `server_version` refusing libfranka's connect request
    (header <III command, id, size; body <HH version, UDP port; reply status 1 = incompatible)."""
    listener = socket.create_server((host, 1337))

    def serve():
        with listener:
            conn, _ = listener.accept()
            with conn:
                request = conn.recv(16)
                _, command_id, _ = struct.unpack("<III", request[:12])
                body = struct.pack("<BH5x", 1, server_version)
                conn.sendall(struct.pack("<III", 0, command_id, 12 + len(body)) + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(30)
def test_a_robot_server_version_mismatch_says_what_to_install():
    host = free_fci_host()
    server = _old_robot(host, 9)
    with pytest.raises(fl.LinkError) as err:
        fl.connect(LibfrankaSection(fci_host=host, realtime="ignore"))
    server.join(timeout=5)
    v = fl.versions()
    message = str(err.value)
    assert message.startswith("robot server version mismatch: IncompatibleVersionException")
    assert f"franky-control {v['franky']} with libfranka {v['libfranka']}" in message
    assert v["libfranka"].startswith("0.21")
    assert f"--extra-index-url {fl.FRANKY_INDEX}/9/" in message


@pytest.mark.timeout(30)
def test_no_robot_at_the_address_names_fci():
    host = free_fci_host()
    with pytest.raises(fl.LinkError, match=f"no FCI at {host}"):
        fl.connect(LibfrankaSection(fci_host=host, realtime="ignore"))


@pytest.mark.timeout(10)
def test_a_link_lost_mid_motion_says_so_and_other_errors_keep_their_text():
    # franky raises "Net Exception" from its control thread when the link drops mid-motion
    text = fl.explain(RuntimeError("Net Exception"), "172.16.0.2")
    assert text.startswith("lost the connection to the robot at 172.16.0.2"), text
    assert "Net Exception" in text
    assert not fl.explain(RuntimeError("the cabinet is open"), "h").startswith("lost")
    reflex = fl.explain(franky.ControlException("cartesian_reflex"), "172.16.0.2")
    assert reflex == "ControlException: cartesian_reflex"


@pytest.mark.timeout(30)
def test_error_norms_become_per_axis_clips_and_damping_is_a_ratio():
    raw = yaml.safe_load((ROOT / "hardware_configs" / "franky_sim.yaml").read_text())
    cfg = parse_hardware_config(raw)
    trans, rot = fl.error_clips(cfg)
    # norm_bound: the clipped error's norm never exceeds the rig's limit
    assert np.isclose(np.linalg.norm(trans), cfg.safety.max_position_error)
    assert np.isclose(np.linalg.norm(rot), cfg.safety.max_rotation_error)
    raw["libfranka"]["error_clip"] = "per_axis"
    trans, _ = fl.error_clips(parse_hardware_config(raw))
    assert np.allclose(trans, cfg.safety.max_position_error)
    g = fl.gains({"translational_stiffness": 400.0, "rotational_stiffness": 25.0,
                  "translational_damping_ratio": 1.5, "rotational_damping_ratio": 1.0})
    assert np.allclose(np.diag(g.stiffness), [400] * 3 + [25] * 3)
    assert np.allclose(np.diag(g.damping), [1.5 * 2 * math.sqrt(400)] * 3 + [10.0] * 3)


@pytest.mark.timeout(30)
def test_the_real_rig_template_defaults_to_libfranka_with_realtime_enforced():
    from serl.robot.hardware_config import load_hardware_config

    cfg = load_hardware_config(ROOT / "hardware_configs" / "franka_fr3_template.yaml")
    assert cfg.robot.adapter == "libfranka" and cfg.libfranka.realtime == "enforce"
    assert cfg.libfranka.joint_limit_avoidance and not cfg.libfranka.fault_injection


class _Robot:
    """Only what `arm_model_of` reads: the URDF text libfranka's robot reports (or a failure)."""

    def __init__(self, urdf: str | None):
        self._urdf = urdf

    @property
    def model_urdf(self) -> str:
        if self._urdf is None:
            raise RuntimeError("the robot sent no model")
        return self._urdf


def test_arm_model_auto_reads_the_urdf_and_refuses_to_guess():
    assert fl.arm_model_of(_Robot('<robot name="fr3">')) == "fr3"
    assert fl.arm_model_of(_Robot('<robot name="panda">')) == "panda"
    for urdf in ("", None):  # older firmware: nothing to tell the joint limits by
        with pytest.raises(fl.LinkError, match="set libfranka.arm_model to fr3 or panda"):
            fl.arm_model_of(_Robot(urdf))


def test_the_tracking_motion_pulls_the_redundant_posture_toward_the_joint_reset():
    from serl.robot.hardware_config import load_hardware_config

    cfg = load_hardware_config(ROOT / "hardware_configs" / "franky_sim.yaml")
    impedance = {k: getattr(cfg.impedance, k) for k in (
        "translational_stiffness", "rotational_stiffness", "translational_damping_ratio",
        "rotational_damping_ratio")}
    link = fl.Link(None, None, None, np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))
    pose = (np.array([0.5, 0.0, 0.2]), np.array([1.0, 0.0, 0.0, 0.0]))
    (task,) = fl.tracking_motion(cfg, link, impedance, *pose).params.nullspace_tasks
    assert np.allclose(task.target, cfg.reset.joint_reset)
    assert np.allclose(task.stiffness, cfg.libfranka.nullspace_stiffness)
    off = cfg.model_copy(update={"libfranka": cfg.libfranka.model_copy(
        update={"nullspace_stiffness": 0.0})})
    assert fl.tracking_motion(off, link, impedance, *pose).params.nullspace_tasks == []
