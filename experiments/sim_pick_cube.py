"""Lift a cube from pixels: two 128x128 cameras (front, wrist) and the arm state, CPU pixel recipe.

The CPU pixel recipe (`experiments.base.on_cpu_from_pixels`), and why:
- encoder weights: a frozen ResNet-10, randomly initialised (chosen explicitly: no pretrained file
  ships and nothing is downloaded) unless `--agent.encoder.pretrained-path` names converted weights
  (`serl import-encoder`); its features are computed once per frame at insertion, so an update skips
  the trunk (the trunk pass dominates an update on a CPU);
- augmentation: none (`augment_pad=0`): sampled batches carry the cached features, not frames, so a
  random crop has nothing to act on (asking for one with the cache is a config error);
- update-to-data ratio: at least 0.5 updates per env step (the actor waits when more than 2 steps
  per update ahead); the learner's ~2.7 bare updates/s on 2 cores sets the pace.
Stops at 80% evaluation success or after an hour. Measured on 2 CPU cores: 50% in 8-21 minutes over
3 seeds (`bench/results/sample_efficiency_sim_pick_cube_pixels.json`)."""

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
