"""Real rig template: pick up a USB stick and lift it (FR3 + Franka Hand, two RealSense cameras).

Copy hardware_configs/franka_fr3_template.yaml, fill in the placeholders, run `serl check-rig` on
it, then point `--env.hardware-config` at it. The grasp is learned too: SAC for the arm plus the
grasp critic. The operator works a SpaceMouse. With a trained classifier giving the reward instead
of the operator: --reward.no-human --reward.classifier-dir classifiers/franka_usb_pickup"""

from experiments.base import real_rig_template

CONFIG = real_rig_template("franka_usb_pickup", max_episode_steps=120, grasp=True)
