"""Insert a held square peg into a hole whose position and yaw are randomised, from pixels and state."""

from experiments.base import ExperimentConfig
from serl.envs.sim.config import task_defaults

CONFIG = ExperimentConfig(env_id="serl/PandaPegInsert-v0", env=task_defaults("peg_insert"))
