"""Lift a cube from pixels: two 128x128 cameras (front, wrist) and the arm state, CPU pixel recipe.

The recipe: a frozen ResNet-10, randomly initialised unless `--agent.encoder.pretrained-path` names
converted weights, its features cached at insertion. Stops at 80% evaluation success or after an
hour. Measured on 2 CPU cores: 50% in 8-21 minutes over 3 seeds
(`bench/results/sample_efficiency_sim_pick_cube_pixels.json`)."""

from dataclasses import replace

from experiments.base import ExperimentConfig, on_cpu_from_pixels
from serl.agents.config import SACConfig
from serl.envs.sim.config import task_defaults
from serl.learner.config import LearnerConfig
from serl.networks.config import EncoderConfig

CONFIG = on_cpu_from_pixels(ExperimentConfig(
    env_id="serl/PandaPickCube-v0",
    env=task_defaults("pick_cube"),
    agent=replace(SACConfig(grasp_critic=True),
                  encoder=EncoderConfig(image_keys=("front", "wrist"))),
    learner=LearnerConfig(target_eval_success=0.8, max_minutes=60.0),
))
