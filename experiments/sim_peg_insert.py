"""Insert a held square peg into a randomly placed and turned hole, from pixels and state.

The hole's position and yaw are randomised. The gripper stays closed, so the agent is plain SAC over
arm axes only: a locked gripper is never a policy entry (`serl.envs.action_axes`; a 7th entry would
be constant in demos and random in policy data, a spurious "this is a demo" cue). The axes are x, y,
z and yaw: the hole turns about z only, so roll and pitch would only be more to explore. Trained
with the CPU pixel recipe (`experiments.base.on_cpu_from_pixels`: a frozen, randomly initialised
ResNet-10 with cached features and a cheap head, no random crop since batches carry features, at
least one update per env step). Measured on 2 CPU cores, seeds 0, 1 and 2: 80% evaluation success
(last three evaluations) in 23.3, 47.2 and 28.1 minutes (the file in `bench/results/`:
`sample_efficiency_sim_peg_insert_recipe.json`); the previous recipe (six axes, 8 spatial features
and a 256-d bottleneck, two env steps per update) had a best evaluation of 30% in 20 minutes.
Stops at 80% or after an hour."""

from experiments.base import ExperimentConfig, on_cpu_from_pixels
from serl.agents.config import SACConfig
from serl.envs.policy_config import PolicyEnvConfig
from serl.envs.sim.config import task_defaults
from serl.learner.config import LearnerConfig
from serl.networks.config import EncoderConfig

CONFIG = on_cpu_from_pixels(ExperimentConfig(
    demos_dir="demos/sim_peg_insert",
    env_id="serl/PandaPegInsert-v0",
    env=task_defaults("peg_insert"),
    wrappers=PolicyEnvConfig(arm_axes=("x", "y", "z", "yaw")),
    agent=SACConfig(encoder=EncoderConfig(image_keys=("front", "wrist"))),
    learner=LearnerConfig(target_eval_success=0.8, max_minutes=60.0),
))
