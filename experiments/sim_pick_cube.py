"""Lift a cube from pixels: two 128x128 cameras (front, wrist) and the arm state."""

from dataclasses import replace

from experiments.base import ExperimentConfig
from serl.agents.sac import SACConfig
from serl.envs.sim.config import task_defaults
from serl.networks.observation_encoder import EncoderConfig

CONFIG = ExperimentConfig(
    env_id="serl/PandaPickCube-v0",
    env=task_defaults("pick_cube"),
    agent=replace(SACConfig(grasp_critic=True), encoder=EncoderConfig(image_keys=("front", "wrist"))),
)
