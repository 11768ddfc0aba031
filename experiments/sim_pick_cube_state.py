"""Lift a cube from state alone (no cameras; the cube's pose is given, as simulation can): the fastest task to
train on a CPU."""

from dataclasses import replace

from experiments.base import ExperimentConfig
from serl.agents.sac import SACConfig
from serl.envs.sim.config import task_defaults

CONFIG = ExperimentConfig(
    demos_dir="demos/sim_pick_cube_state",
    env_id="serl/PandaPickCube-v0",
    env=replace(task_defaults("pick_cube"), image_obs=False, object_pose=True),
    agent=SACConfig(grasp_critic=True),
)
