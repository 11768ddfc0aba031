"""The `serl` command through its real entry point, in subprocesses, with tiny budgets."""

import json
import subprocess
import sys

import pytest


def serl(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "serl.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.timeout(60)
def test_help_lists_every_subcommand():
    from serl.cli import COMMANDS

    out = serl("--help")
    assert out.returncode == 0
    for name in COMMANDS:
        assert name in out.stdout
    tasks = [line.split()[0] for line in serl("tasks").stdout.splitlines() if line.strip()]
    assert {"sim_pick_cube", "sim_pick_cube_state", "sim_peg_insert"} <= set(tasks)


@pytest.mark.timeout(60)
def test_unknown_subcommand_task_and_field_are_named():
    bad = serl("fly")
    assert bad.returncode == 2 and "unknown subcommand 'fly'" in bad.stderr
    bad = serl("scripted", "sim_pick_cubes")
    assert bad.returncode != 0 and "unknown task 'sim_pick_cubes'" in bad.stderr
    assert "sim_pick_cube_state" in bad.stderr
    bad = serl("scripted", "sim_pick_cube", "--env.max-episode-step", "5")
    assert bad.returncode != 0 and "--env.max-episode-step" in bad.stderr + bad.stdout
    bad = serl("scripted", "sim_pick_cube", "--env.max-episode-steps", "many")
    assert bad.returncode != 0 and "many" in bad.stderr + bad.stdout
    bad = serl("scripted", "sim_pick_cube", "--env.cameras", "front", "top")
    assert bad.returncode != 0 and "unknown camera" in bad.stderr


@pytest.mark.timeout(120)
def test_scripted_run_writes_summary_and_video(tmp_path):
    out = serl("scripted", "sim_pick_cube", "--episodes", "2", "--out", str(tmp_path),
               "--env.max-episode-steps", "60")
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["episodes"] == 2 and summary["successes"] == 2
    assert summary["intervention_rate"] == 1.0
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 2 and all(v.stat().st_size > 1000 for v in videos)
    assert "2/2 episodes succeeded" in out.stdout
