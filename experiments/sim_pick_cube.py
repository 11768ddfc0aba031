"""Lift a cube from pixels: two 128x128 cameras (front, wrist) and the arm state, CPU pixel recipe.

The CPU pixel recipe (`experiments.base.on_cpu_from_pixels`), and why:
- encoder weights: a frozen ResNet-10, randomly initialised (chosen explicitly: no pretrained file
  ships and nothing is downloaded) unless `--agent.encoder.pretrained-path` names converted weights
  (`serl import-encoder`); its features are computed once per frame at insertion, so an update skips
  the trunk (the trunk pass dominates an update on a CPU); a cheap head on the cached map (2 spatial
  features, a 64-d bottleneck per camera: 0.106 s per bare update at batch 128 against 0.217 s with
  8 and 256, where the head was 98% of an update's FLOPs);
- augmentation: none (`augment_pad=0`): sampled batches carry the cached features, not frames, so a
  random crop has nothing to act on (asking for one with the cache is a config error);
- update-to-data ratio: at least one update per env step.
This task adds the action x, y, z, yaw and the gripper (a cube on a table needs no roll or pitch:
two fewer dims to explore and in the entropy target) and the reference grasp penalty, 0.02 per
gripper change. Measured on 2 CPU cores, 3 seeds: 90% evaluation success (last three evaluations)
in 21.0, 21.8 and 11.2 minutes (`bench/results/sample_efficiency_sim_pick_cube_recipe.json`); the
previous recipe (all six arm axes, 8 and 256, penalty 0.1, two env steps per update) reached 50% in
8-21 minutes and never 90% (`sample_efficiency_sim_pick_cube_pixels.json`). Stops at 90% or after
an hour."""

from dataclasses import replace

from experiments.base import ExperimentConfig, on_cpu_from_pixels
from serl.agents.config import SACConfig
from serl.envs.policy_config import PolicyEnvConfig
from serl.envs.sim.config import task_defaults
from serl.learner.config import LearnerConfig
from serl.networks.config import EncoderConfig

CONFIG = on_cpu_from_pixels(ExperimentConfig(
    env_id="serl/PandaPickCube-v0",
    env=task_defaults("pick_cube"),
    wrappers=PolicyEnvConfig(arm_axes=("x", "y", "z", "yaw"), grasp_penalty=0.02),
    agent=replace(SACConfig(grasp_critic=True),
                  encoder=EncoderConfig(image_keys=("front", "wrist"))),
    learner=LearnerConfig(target_eval_success=0.9, max_minutes=60.0),
))
