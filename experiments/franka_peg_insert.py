"""Real rig template: insert a held peg (FR3 + Franka Hand, two RealSense wrist cameras, SpaceMouse).

Copy hardware_configs/franka_fr3_template.yaml, fill in the placeholders, run `serl check-rig` on it, then point
`--env.hardware-config` at it. The peg stays gripped: plain SAC over the arm, the gripper is never commanded."""

from dataclasses import replace

from experiments.sim_pick_cube_ros import RigExperimentConfig
from serl.agents.classifier import ClassifierConfig
from serl.agents.sac import SACConfig
from serl.devices import DeviceConfig
from serl.envs.franka_config import FrankaEnvConfig
from serl.envs.wrappers import PolicyEnvConfig
from serl.networks.observation_encoder import EncoderConfig
from serl.reward.config import RewardConfig

CONFIG = RigExperimentConfig(
    demos_dir="demos/franka_peg_insert",
    env=FrankaEnvConfig(hardware_config="hardware_configs/franka_fr3_template.yaml", cameras=("wrist_1", "wrist_2"),
                        max_episode_steps=100, gripper_locked=True, joint_reset_every=20),
    wrappers=replace(PolicyEnvConfig(), intervention_hold_steps=3, confirm_reset=True),
    # The person at the SpaceMouse moves the arm (its two buttons work the gripper); pause, abort, marks and
    # confirm_reset come from the terminal's keys (p, x, 1, 0, Enter), since two buttons cannot carry them all.
    device=DeviceConfig(kind="spacemouse", keyboard_controls=True),
    # The operator gives the reward (mark_success / mark_failure): the rig has no success signal of its own. With a
    # trained classifier instead: --reward.no-human --reward.classifier-dir classifiers/franka_peg_insert
    reward=RewardConfig(human=True, classifier=replace(ClassifierConfig(), image_keys=("wrist_1", "wrist_2"))),
    agent=replace(SACConfig(), encoder=EncoderConfig(image_keys=("wrist_1", "wrist_2"), trunk="resnet10",
                                                     frozen_trunk=True)),
    demo_episodes=20,
)
