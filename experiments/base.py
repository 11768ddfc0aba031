"""The base experiment configuration. A task in this folder is a small override of
`ExperimentConfig`; the `serl` command parses field overrides on top of it
(`--agent.batch-size 128`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from serl.actor.config import ActorConfig
from serl.agents.bc_config import BCConfig
from serl.agents.config import ClassifierConfig, SACConfig
from serl.dashboard.config import DashboardConfig
from serl.devices import DeviceConfig
from serl.devices.scripted import ScriptedOperatorConfig
from serl.envs.franka_config import FrankaEnvConfig
from serl.envs.policy_config import PolicyEnvConfig
from serl.envs.sim.config import SimEnvConfig
from serl.learner.config import LearnerConfig
from serl.networks.config import EncoderConfig
from serl.reward.config import RewardConfig
from serl.transport.config import TransportConfig


@dataclass(frozen=True)
class ExperimentConfig:
    """One task's whole configuration: env, operator, agent, learner, actor, transport, reward."""

    # gymnasium id of the environment
    env_id: str = "serl/PandaPickCube-v0"
    # the simulated task (scene, limits, rates)
    env: SimEnvConfig = field(default_factory=SimEnvConfig)
    # what the policy sees and how it acts
    wrappers: PolicyEnvConfig = field(default_factory=PolicyEnvConfig)
    # the simulated person
    operator: ScriptedOperatorConfig = field(default_factory=ScriptedOperatorConfig)
    # operator input: scripted (sim), SpaceMouse, keyboard
    device: DeviceConfig = field(default_factory=DeviceConfig)
    # the RLPD agent
    agent: SACConfig = field(default_factory=lambda: SACConfig(grasp_critic=True))
    # buffers, publishing, checkpoints, budgets
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    # actor id, step budget, update-to-data rate limit
    actor: ActorConfig = field(default_factory=ActorConfig)
    # ZeroMQ addresses, frames, CURVE keys
    transport: TransportConfig = field(default_factory=TransportConfig)
    # the operator's web page, served by the actor
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    # env reward, a learned classifier, or the operator
    reward: RewardConfig = field(default_factory=RewardConfig)
    # demonstration episodes; loaded into the demo buffer at start
    demos_dir: str = "demos/sim_pick_cube"
    # `serl train` first records this many with the scripted operator if none exist
    demo_episodes: int = 20
    # `serl train-bc`: the behaviour-cloned policy trained on demos_dir (never read by `serl train`)
    bc: BCConfig = field(default_factory=BCConfig)
    seed: int = 0  # seeds env resets, the operator and the agent
    runs_dir: str = "runs"  # a run lives in runs_dir/<run name>/

    def __post_init__(self) -> None:
        if (self.agent.residual_scale is not None) != bool(self.wrappers.base_policy):
            raise ValueError(
                "agent.residual_scale and wrappers.base_policy go together (residual RL corrects "
                "a base policy's action): set both, e.g. --base-policy FILE, or neither "
                f"(residual_scale={self.agent.residual_scale}, "
                f"base_policy={self.wrappers.base_policy!r})")
        if (self.actor.max_steps_per_update is not None
                and self.actor.free_steps < self.learner.min_online):
            raise ValueError(f"actor.free_steps ({self.actor.free_steps}) must be at least "
                             f"learner.min_online ({self.learner.min_online}): the rate-limited "
                             "actor would wait for updates that never start")
        steps, updates = self.actor.max_steps_per_update, self.learner.max_updates_per_step
        if updates is not None and (updates <= 0 or (steps is not None and steps * updates < 1)):
            raise ValueError(f"learner.max_updates_per_step ({updates}) must be positive and, "
                             f"with actor.max_steps_per_update ({steps}), their product at least "
                             "1: else the actor waits for updates the learner holds back for data")
        if self.agent.grasp_critic and self.env.gripper_locked:
            raise ValueError("agent.grasp_critic needs a gripper the policy commands, but "
                             "env.gripper_locked holds it closed: set one of them False")
        cameras = set(self.env.cameras) if self.env.image_obs else set()
        unknown = set(self.agent.encoder.image_keys) - cameras
        if unknown:
            raise ValueError(f"agent.encoder.image_keys {sorted(unknown)} are not cameras of the "
                             f"env (env.cameras={list(self.env.cameras)}, "
                             f"env.image_obs={self.env.image_obs})")


@dataclass(frozen=True)
class RigExperimentConfig(ExperimentConfig):
    """An experiment on a rig behind the robot server (`sim_pick_cube_ros` and the real-rig
    templates)."""

    env_id: str = "serl/Franka-v0"  # gymnasium id of the environment
    # the rig file and how episodes run on it
    env: FrankaEnvConfig = field(default_factory=FrankaEnvConfig)


def real_rig_template(task: str, max_episode_steps: int, grasp: bool) -> RigExperimentConfig:
    """A real-rig task: FR3 + Franka Hand from hardware_configs/franka_fr3_template.yaml, two
    RealSense wrist cameras seen by a frozen ResNet-10, the operator at a SpaceMouse giving the
    reward. `grasp`: the grasp is learned too (SAC plus the grasp critic); else the gripper stays
    closed on the held object and is never commanded."""
    cameras = ("wrist_1", "wrist_2")
    return RigExperimentConfig(
        demos_dir=f"demos/{task}",
        env=FrankaEnvConfig(hardware_config="hardware_configs/franka_fr3_template.yaml",
                            cameras=cameras, max_episode_steps=max_episode_steps,
                            gripper_locked=not grasp, joint_reset_every=20),
        wrappers=replace(PolicyEnvConfig(), intervention_hold_steps=3, confirm_reset=True),
        # The person at the SpaceMouse moves the arm (its two buttons work the gripper); pause,
        # abort, marks and confirm_reset come from the terminal's keys (p, x, 1, 0, Enter), since
        # two buttons cannot carry them all.
        device=DeviceConfig(kind="spacemouse", keyboard_controls=True),
        # The operator gives the reward (mark_success / mark_failure): the rig has no success
        # signal of its own. With a trained classifier instead:
        # --reward.no-human --reward.classifier-dir classifiers/<task>
        reward=RewardConfig(human=True,
                            classifier=replace(ClassifierConfig(), image_keys=cameras)),
        agent=replace(SACConfig(grasp_critic=grasp),
                      encoder=EncoderConfig(image_keys=cameras, trunk="resnet10",
                                            frozen_trunk=True)),
        demo_episodes=20,
    )


def on_cpu_from_pixels(config: ExperimentConfig) -> ExperimentConfig:
    """The fastest honest pixel recipe on a CPU (measured in `bench/results/`): a frozen ResNet-10
    whose features are computed once per frame at insertion, so updates skip the trunk; a cheap
    trainable head on the cached map (2 spatial features and a 64-d bottleneck per camera: a fifth
    of the FLOPs of 8 and 256, half the bare update time at batch 128); batches of 128; the
    scripted operator takes over ~30% of steps at first; at most one env step per learner update
    (the cheap head affords it). No pretrained file ships, so the frozen trunk keeps its random
    initialisation, chosen explicitly (`random_frozen_trunk`: random conv features suffice for
    these scenes). No random crop (`augment_pad=0`): sampled batches carry cached features, not
    frames, so there is nothing to crop (the crop was silently off before it became a config
    error)."""
    encoder = replace(config.agent.encoder, trunk="resnet10", frozen_trunk=True,
                      random_frozen_trunk=True, feature_cache=True, num_spatial_features=2,
                      bottleneck_dim=64)
    return replace(config, agent=replace(config.agent, encoder=encoder, batch_size=128,
                                         augment_pad=0),
                   operator=replace(config.operator, takeover_prob=0.03, takeover_steps=15),
                   actor=replace(config.actor, max_steps_per_update=1.0, free_steps=500),
                   learner=replace(config.learner, min_online=500))
