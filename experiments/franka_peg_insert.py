"""Real rig template: insert a held peg (FR3 + Franka Hand, two RealSense wrist cameras).

The operator works a SpaceMouse. Copy hardware_configs/franka_fr3_template.yaml, fill in the
placeholders, run `serl check-rig` on it, then point `--env.hardware-config` at it. The peg stays
gripped: plain SAC over the arm, the gripper is never commanded. With a trained classifier giving
the reward instead of the operator: --reward.no-human --reward.classifier-dir
classifiers/franka_peg_insert"""

from experiments.base import real_rig_template

CONFIG = real_rig_template("franka_peg_insert", max_episode_steps=100, grasp=False)
