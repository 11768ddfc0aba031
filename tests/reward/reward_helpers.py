"""Shared by the reward tests: a small simulated pick-cube env with 32x32 cameras, and
classifier versions with a fixed threshold (untrained weights: what is tested is which version
judges, not how well)."""

import dataclasses

import jax
import numpy as np

from serl.agents.classifier import init_params
from serl.agents.config import ClassifierConfig
from serl.envs.registration import make
from serl.envs.sim.config import SimEnvConfig
from serl.reward.store import save_version

SIZE = 32
CFG = ClassifierConfig(image_keys=("front",), image_shape=(SIZE, SIZE, 3), bottleneck_dim=8,
                       hidden_dims=(8,), confirm_steps=1)
NEVER, ALWAYS = 1.0 - 1e-6, 0.0  # thresholds that an untrained classifier never / always reaches
# `serl` command-line overrides for a tiny task: 32x32 front camera,
# an 8-unit classifier trained for 3 steps
SMALL = ["--env.image-size", "32", "--reward.classifier.image-keys", "front",
         "--reward.classifier.image-shape", "32", "32", "3",
         "--reward.classifier.bottleneck-dim", "8", "--reward.classifier.hidden-dims", "8",
         "--reward.classifier.batch-size", "8", "--reward.classifier.steps", "3"]


def raw_env(steps=6, **overrides):
    return make("serl/PandaPickCube-v0",
                config=SimEnvConfig(image_size=SIZE, max_episode_steps=steps, **overrides))


def save_fixed(folder, threshold: float, seed: int = 0, confirm_steps: int = 1):
    cfg = dataclasses.replace(CFG, confirm_steps=confirm_steps)
    params = init_params(cfg, jax.random.PRNGKey(seed))
    return save_version(folder, params, cfg, {"threshold": threshold, "validation": {}})


def zero_action():
    return np.zeros(7, np.float32)
