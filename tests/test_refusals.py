"""Commands refuse what they must not run: a learner on a network interface without CURVE and a
frozen trunk with no pretrained weights (before anything is written or bound), and a demo folder
none of whose files was recorded for the config (real `serl` processes)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from serl.commands.errors import EXIT_CONFIG, EXIT_INSECURE

ROOT = Path(__file__).resolve().parent.parent


def serl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "serl.cli", *args, "--runs-dir", str(tmp_path / "runs"),
           "--demos-dir", str(tmp_path / "demos")]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(90)
def test_a_learner_on_the_network_without_curve_is_refused_before_it_binds(tmp_path):
    done = serl(tmp_path, "learner", "sim_pick_cube_state", "--transport.bind-host", "0.0.0.0")
    assert done.returncode == EXIT_INSECURE, done.stderr
    assert "without CURVE" in done.stderr and "serl keys generate" in done.stderr
    assert "--transport.allow-unauthenticated-network" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()  # refused before the run folder was made


@pytest.mark.timeout(90)
def test_a_rig_task_freezing_a_trunk_without_weights_is_refused_naming_the_converter(tmp_path):
    for command in ("train", "learner"):
        done = serl(tmp_path, command, "franka_peg_insert")
        assert done.returncode == EXIT_CONFIG, done.stderr
        assert "serl import-encoder" in done.stderr and "pretrained-path" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "demos").exists()


def demo_episode(spec, steps: int = 3) -> dict:
    """A contiguous episode of zeros shaped by `spec` (observations, actions, fixed fields)."""
    from serl.data.schema import fixed_fields

    obs = {k: np.zeros((steps + 1, *s), d) for k, s, d in spec.observations}
    batch = {"observations": {k: v[:-1] for k, v in obs.items()},
             "next_observations": {k: v[1:] for k, v in obs.items()}}
    batch.update({k: np.zeros((steps, *s), d) for k, (s, d) in
                  fixed_fields(spec.action_dim).items()})
    return batch


@pytest.mark.timeout(90)
def test_a_demo_folder_recorded_for_another_action_is_refused_naming_the_dimensions(tmp_path):
    import experiments
    from serl.data import TransitionSpec
    from serl.data.demos import save_episode
    from serl.envs.contract import policy_spaces
    from serl.ports import free_port

    config = experiments.load("sim_pick_cube_state")
    seven_d = TransitionSpec.from_spaces(*policy_spaces(config.env, config.wrappers))
    assert seven_d.action_dim == 7
    save_episode(tmp_path / "demos", demo_episode(seven_d), seven_d)
    done = serl(tmp_path, "learner", "sim_pick_cube_state", "--wrappers.arm-axes", "x", "y", "z",
                "yaw", "--transport.data-port", str(free_port()),
                "--transport.weights-port", str(free_port()))
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert "none of the 1 demo files" in done.stderr
    assert "7-D actions, this config's are 5-D" in done.stderr
    assert "serl record-demos" in done.stderr and "Traceback" not in done.stderr
