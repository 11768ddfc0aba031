"""Lift a cube from pixels through the whole robot path: ROS 2 simulated driver behind the robot server.

`FrankaEnv` with ROS 2 image cameras, the real robot server and the simulated driver (started and stopped with
the env, on a private ROS domain, since `launch_sim`)."""

from dataclasses import dataclass, field, replace

from experiments.base import ExperimentConfig
from serl.agents.sac import SACConfig
from serl.envs.franka_config import FrankaEnvConfig
from serl.networks.observation_encoder import EncoderConfig


@dataclass(frozen=True)
class RigExperimentConfig(ExperimentConfig):
    """An experiment on a rig behind the robot server (the real-rig templates use it too)."""

    env_id: str = "serl/Franka-v0"  # gymnasium id of the environment
    env: FrankaEnvConfig = field(default_factory=FrankaEnvConfig)  # the rig file and how episodes run on it


CONFIG = RigExperimentConfig(
    demos_dir="demos/sim_pick_cube_ros",
    env=FrankaEnvConfig(hardware_config="hardware_configs/sim_panda.yaml", launch_sim=True),
    agent=replace(SACConfig(grasp_critic=True), encoder=EncoderConfig(image_keys=("front", "wrist"))),
)
