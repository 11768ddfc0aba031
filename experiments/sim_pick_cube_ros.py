"""Lift a cube from pixels through the whole robot path: simulated ROS 2 driver, real robot server.

`FrankaEnv` with ROS 2 image cameras, the real robot server and the simulated driver (started and
stopped with the env, on a private ROS domain, since `launch_sim`)."""

from dataclasses import replace

from experiments.base import RigExperimentConfig
from serl.agents.config import SACConfig
from serl.envs.franka_config import FrankaEnvConfig
from serl.networks.config import EncoderConfig

CONFIG = RigExperimentConfig(
    demos_dir="demos/sim_pick_cube_ros",
    env=FrankaEnvConfig(hardware_config="hardware_configs/sim_panda.yaml", launch_sim=True),
    agent=replace(SACConfig(grasp_critic=True),
                  encoder=EncoderConfig(image_keys=("front", "wrist"))),
)
