"""Insert a held square peg into a hole whose position and yaw are randomised, from pixels and state. The gripper
stays closed, so the agent is plain SAC over the 7-D action (its gripper dimension is ignored by the env). Trained
with the CPU pixel recipe of `sim_pick_cube`."""

from experiments.base import ExperimentConfig, on_cpu_from_pixels
from serl.agents.sac import SACConfig
from serl.envs.sim.config import task_defaults
from serl.networks.observation_encoder import EncoderConfig

CONFIG = on_cpu_from_pixels(ExperimentConfig(
    demos_dir="demos/sim_peg_insert",
    env_id="serl/PandaPegInsert-v0",
    env=task_defaults("peg_insert"),
    agent=SACConfig(encoder=EncoderConfig(image_keys=("front", "wrist"))),
))
