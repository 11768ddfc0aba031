"""`serl check-rig`: a bad rig file is refused naming the key; against the launched simulated rig
the server and both ROS cameras are up; what is down is listed and fails the check."""

from pathlib import Path

import pytest
import yaml

from serl.cli import main as serl_main

SIM_RIG = Path("hardware_configs/sim_panda.yaml")


def rig_with(tmp_path, **sections) -> Path:
    raw = yaml.safe_load(SIM_RIG.read_text())
    for section, values in sections.items():
        raw[section] = {**raw.get(section, {}), **values}
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.timeout(30)
@pytest.mark.parametrize("change, message", [
    ({"control": {"rate_hz": -5}}, "control.rate_hz: Input should be greater than 0"),
    ({"safety": {"box_maxx": [1, 1, 1]}}, "safety.box_maxx: Extra inputs are not permitted"),
    ({"cameras": {"front": {"type": "ros"}}},
     "cameras.front: Value error, a ros camera needs 'topic'"),
])
def test_bad_rig_file_names_the_key(tmp_path, capsys, change, message):
    assert serl_main(["check-rig", str(rig_with(tmp_path, **change))]) == 2
    assert message in capsys.readouterr().out


@pytest.mark.timeout(30)
def test_nothing_running_is_down(tmp_path, capsys):
    from serl.ports import free_port

    path = rig_with(tmp_path, robot={"address": f"tcp://127.0.0.1:{free_port()}",
                                     "request_timeout_s": 0.3})
    argv = ["check-rig", str(path), "--wait", "0.3", "--ros-domain-id", "77",
            "--require-spacemouse"]
    assert serl_main(argv) == 1
    out = capsys.readouterr().out
    assert "robot server" in out and "did not answer 'health'" in out
    assert "camera 'front': no frame within 1 s of opening (ros /cameras/front/image_raw)" in out
    # server, both cameras, the SpaceMouse
    assert out.count("DOWN") == 4 and "rig is NOT ready" in out


@pytest.mark.timeout(90)
def test_simulated_rig_is_up(capsys):
    from robot_servers.launch import launch_sim_rig

    with launch_sim_rig(SIM_RIG) as rig:
        argv = ["check-rig", str(rig.config_path), "--ros-domain-id", str(rig.domain_id), "--wait",
                "10"]
        # the SpaceMouse is not required unless asked (none on this machine)
        assert serl_main(argv) == 0
        out = capsys.readouterr().out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert " up " in lines["robot server"] and "mode " in lines["robot server"]
    for name in ("front", "wrist"):
        line = next(v for k, v in lines.items() if k.startswith(f"camera {name}"))
        assert " up " in line and "128x128 frame" in line and " ms old" in line
    assert "rig is ready" in out and "spacemouse" in lines


@pytest.fixture
def stateless_curve_server(tmp_path, monkeypatch):
    """The real robot server in this process, with CURVE, on a ROS domain where no driver publishes:
    it answers `health` but has never had robot state. Yields the rig file a check-rig user would
    write (client keys in it)."""
    import random
    import threading

    import rclpy

    from robot_servers.adapters.sim import SimArmAdapter
    from robot_servers.arm_control import ArmControl
    from robot_servers.franka_server import FrankaServer
    from serl.ports import free_port
    from serl.robot.hardware_config import load_hardware_config
    from serl.transport.config import DEFAULT_ACTOR_ID
    from serl.transport.keys import generate_keys

    keys = generate_keys(tmp_path / "keys")
    path = rig_with(tmp_path, robot={
        "address": f"tcp://127.0.0.1:{free_port()}", "request_timeout_s": 2.0,
        "curve_server_secret_key": str(keys["learner"] / "learner.key_secret"),
        "curve_authorized_keys_dir": str(keys["learner"] / "authorized"),
        "curve_client_secret_key": str(keys["actor"] / f"{DEFAULT_ACTOR_ID}.key_secret"),
        "curve_server_public_key": str(keys["actor"] / "learner.key")})
    cfg = load_hardware_config(path)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=random.randint(215, 232))  # outside the launches' 1-101
    node = rclpy.create_node("check_rig_test_server", context=context,
                             start_parameter_services=False)
    server = FrankaServer(cfg, ArmControl(cfg, SimArmAdapter(node, cfg)))
    stop = threading.Event()
    thread = threading.Thread(target=server.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        yield path
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert not thread.is_alive()


@pytest.mark.timeout(60)
def test_a_server_without_robot_state_is_down_and_curve_keys_are_used(
        stateless_curve_server, capsys):
    argv = ["check-rig", str(stateless_curve_server), "--wait", "0.3", "--ros-domain-id", "77"]
    assert serl_main(argv) == 1
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("robot server"))
    assert " DOWN " in line and "mode hold" in line, line  # it answered
    assert "reason: no command yet" in line, line
    assert "no robot state yet" in line


@pytest.mark.timeout(10)
@pytest.mark.parametrize("health, up, says", [
    ({"mode": "hold", "reason": "reset done", "has_state": True, "state_age_s": 0.01}, True,
     "state age 10 ms"),
    ({"mode": "ok", "reason": None, "has_state": True, "state_age_s": 0.9}, False,
     "stale: over 0.5 s"),
    ({"mode": "hold", "reason": "no command yet", "has_state": False, "state_age_s": None}, False,
     "no robot state yet"),
    ({"mode": "fault", "reason": "reflex", "has_state": True, "state_age_s": 0.01}, False,
     "reason: reflex"),
])
def test_robot_health_is_judged_by_state_and_mode(health, up, says):
    from serl.commands.check_rig import judge_health

    check = judge_health(health, "tcp://127.0.0.1:5600", state_timeout_s=0.5)
    assert check.up is up and says in check.detail, check.detail
