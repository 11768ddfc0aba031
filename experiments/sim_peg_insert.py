"""Insert a held square peg into a randomly placed and turned hole, from pixels and state.

The hole's position and yaw are randomised. The gripper stays closed, so the agent is plain SAC over
the six arm axes: a locked gripper is never a policy entry (`serl.envs.action_axes`; a 7th entry
would be constant in demos and random in policy data, a spurious "this is a demo" cue). Trained with
the CPU pixel recipe of `sim_pick_cube` (`experiments.base.on_cpu_from_pixels`: a frozen, randomly
initialised ResNet-10 with cached features, no random crop since batches carry features, at least
0.5 updates per env step)."""

from experiments.base import ExperimentConfig, on_cpu_from_pixels
from serl.agents.config import SACConfig
from serl.envs.sim.config import task_defaults
from serl.networks.config import EncoderConfig

CONFIG = on_cpu_from_pixels(ExperimentConfig(
    demos_dir="demos/sim_peg_insert",
    env_id="serl/PandaPegInsert-v0",
    env=task_defaults("peg_insert"),
    agent=SACConfig(encoder=EncoderConfig(image_keys=("front", "wrist"))),
))
