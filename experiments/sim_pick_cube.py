"""Lift a cube from pixels: two 128x128 cameras (front, wrist) and the arm state."""

from experiments.base import ExperimentConfig
from serl.envs.sim.config import task_defaults

CONFIG = ExperimentConfig(env_id="serl/PandaPickCube-v0", env=task_defaults("pick_cube"))
