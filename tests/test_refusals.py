"""Commands refuse what they must not run, before anything is written or bound: a learner on a
network interface without CURVE, and a frozen trunk with no pretrained weights (real `serl`
processes)."""

import subprocess
import sys
from pathlib import Path

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
