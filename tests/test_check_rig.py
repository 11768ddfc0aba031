"""`serl check-rig`: a bad rig file is refused naming the key; against the launched simulated rig the server and
both ROS cameras are up; what is down is listed and fails the check."""

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
    ({"cameras": {"front": {"type": "ros"}}}, "cameras.front: Value error, a ros camera needs 'topic'"),
])
def test_bad_rig_file_names_the_key(tmp_path, capsys, change, message):
    assert serl_main(["check-rig", str(rig_with(tmp_path, **change))]) == 2
    assert message in capsys.readouterr().out


@pytest.mark.timeout(30)
def test_nothing_running_is_down(tmp_path, capsys):
    from robot_servers.launch import free_port

    path = rig_with(tmp_path, robot={"address": f"tcp://127.0.0.1:{free_port()}", "request_timeout_s": 0.3})
    argv = ["check-rig", str(path), "--wait", "0.3", "--ros-domain-id", "77", "--require-spacemouse"]
    assert serl_main(argv) == 1
    out = capsys.readouterr().out
    assert "robot server" in out and "did not answer 'health'" in out
    assert "camera 'front': no frame within 1 s of opening (ros /cameras/front/image_raw)" in out
    assert out.count("DOWN") == 4 and "rig is NOT ready" in out  # server, both cameras, the SpaceMouse


@pytest.mark.timeout(90)
def test_simulated_rig_is_up(capsys):
    from robot_servers.launch import launch_sim_rig

    with launch_sim_rig(SIM_RIG) as rig:
        argv = ["check-rig", str(rig.config_path), "--ros-domain-id", str(rig.domain_id), "--wait", "10"]
        assert serl_main(argv) == 0  # the SpaceMouse is not required unless asked (none on this machine)
        out = capsys.readouterr().out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert " up " in lines["robot server"] and "mode " in lines["robot server"]
    for name in ("front", "wrist"):
        line = next(v for k, v in lines.items() if k.startswith(f"camera {name}"))
        assert " up " in line and "128x128 frame" in line and " ms old" in line
    assert "rig is ready" in out and "spacemouse" in lines
