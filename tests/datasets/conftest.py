"""Shared data of the dataset tests: two short `sim_pick_cube` episodes recorded through the real
stack (the scripted operator driving the simulated arm, both 128x128 cameras rendered), saved as
demo files, and their LeRobot export."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

import experiments
from serl.datasets.export import export_demos
from serl.envs.action_axes import ARM_AXES

STEPS = 8  # transitions per episode
# the dataset tests keep the six arm axes (and the gripper) of LeRobot's HIL-SERL recorder and of
# the LeRobot fixture, whatever the task's own default
SIX_AXES = ["--wrappers.arm-axes", *ARM_AXES]


def short_config(**env):
    """sim_pick_cube on all six arm axes, with episodes of STEPS steps (plus any env
    overrides)."""
    base = experiments.load("sim_pick_cube")
    return dataclasses.replace(base, env=dataclasses.replace(base.env, max_episode_steps=STEPS,
                                                             **env),
                               wrappers=dataclasses.replace(base.wrappers, arm_axes=ARM_AXES))


def record(folder: Path, config, episodes: int = 2) -> list[Path]:
    """Every episode the scripted operator drives (kept whether or not it succeeds), as demo
    files."""
    from serl.commands.record_demos import record_episode
    from serl.commands.runtime import build_env, transition_spec
    from serl.data import stack
    from serl.data.demos import save_episode

    config = dataclasses.replace(config, operator=config.operator.driving())
    env = build_env(config)
    try:
        spec = transition_spec(env)
        return [save_episode(folder, stack(record_episode(env, 100 + i, i,
                                                          threading.Event())[0]), spec)
                for i in range(episodes)]
    finally:
        env.close()


@pytest.fixture(scope="session")
def demos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demos") / "sim_pick_cube"
    record(folder, short_config())
    return folder


@pytest.fixture(scope="session")
def exported(demos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lerobot") / "sim_pick_cube"
    export_demos(demos, out, short_config(), "pick up the cube", progress=lambda _: None)
    return out
