"""`serl SUB --help` through the real entry point: without a task it prints the subcommand's own
options and the tasks and exits 0; with a task it lists that task's config fields."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import experiments
from serl.cli import COMMANDS


def serl(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "serl.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def task_commands() -> list[str]:
    """The subcommands that take a TASK: those parsing it with `parse_task_config`."""
    return [name for name, (module, _) in COMMANDS.items()
            if "parse_task_config(" in Path(importlib.util.find_spec(module).origin).read_text()]


def test_every_task_command_is_found():
    expected = {"train", "learner", "actor", "record-demos", "record-labels", "train-reward"}
    assert expected <= set(task_commands())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", task_commands())
def test_help_without_a_task_lists_options_and_tasks(command):
    out = serl(command, "--help")
    assert out.returncode == 0, out.stderr
    assert f"usage: serl {command}" in out.stdout and "TASK --help" in out.stdout
    for name in experiments.names():
        assert name in out.stdout
    assert "-h, --help" in out.stdout and "required" not in out.stderr


@pytest.mark.timeout(120)
def test_help_with_a_task_lists_its_config_fields_and_a_missing_task_is_refused():
    out = serl("train", "sim_pick_cube", "--help")
    assert out.returncode == 0, out.stderr
    assert "--single-process" in out.stdout and "--env.max-episode-steps" in out.stdout
    missing = serl("train", "--run", "x")
    assert missing.returncode == 2 and "required: TASK" in missing.stderr
