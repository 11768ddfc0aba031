"""The base experiment configuration. A task in this folder is a small override of `ExperimentConfig`; the `serl`
command parses field overrides on top of it (`--agent.batch-size 128`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from serl.actor import ActorConfig
from serl.agents.sac import SACConfig
from serl.devices import DeviceConfig
from serl.devices.scripted import ScriptedOperatorConfig
from serl.envs.sim.config import SimEnvConfig
from serl.envs.wrappers import PolicyEnvConfig
from serl.learner import LearnerConfig
from serl.reward.config import RewardConfig
from serl.transport.config import TransportConfig


@dataclass(frozen=True)
class ExperimentConfig:
    env_id: str = "serl/PandaPickCube-v0"  # gymnasium id of the environment
    env: SimEnvConfig = field(default_factory=SimEnvConfig)  # the simulated task (scene, limits, rates)
    wrappers: PolicyEnvConfig = field(default_factory=PolicyEnvConfig)  # what the policy sees and how it acts
    operator: ScriptedOperatorConfig = field(default_factory=ScriptedOperatorConfig)  # the simulated person
    device: DeviceConfig = field(default_factory=DeviceConfig)  # operator input: scripted (sim), SpaceMouse, keyboard
    agent: SACConfig = field(default_factory=lambda: SACConfig(grasp_critic=True))  # the RLPD agent
    learner: LearnerConfig = field(default_factory=LearnerConfig)  # buffers, publishing, checkpoints, budgets
    actor: ActorConfig = field(default_factory=ActorConfig)  # actor id, step budget, update-to-data rate limit
    transport: TransportConfig = field(default_factory=TransportConfig)  # ZeroMQ addresses, frames, CURVE keys
    reward: RewardConfig = field(default_factory=RewardConfig)  # env reward, a learned classifier, or the operator
    demos_dir: str = "demos/sim_pick_cube"  # demonstration episodes; loaded into the demo buffer at start
    demo_episodes: int = 20  # `serl train` first records this many with the scripted operator if none exist
    seed: int = 0  # seeds env resets, the operator and the agent
    runs_dir: str = "runs"  # a run lives in runs_dir/<run name>/

    def __post_init__(self) -> None:
        if self.actor.max_steps_per_update is not None and self.actor.free_steps < self.learner.min_online:
            raise ValueError(f"actor.free_steps ({self.actor.free_steps}) must be at least learner.min_online "
                             f"({self.learner.min_online}): the rate-limited actor would wait for updates that "
                             "never start")
        cameras = set(self.env.cameras) if self.env.image_obs else set()
        unknown = set(self.agent.encoder.image_keys) - cameras
        if unknown:
            raise ValueError(f"agent.encoder.image_keys {sorted(unknown)} are not cameras of the env "
                             f"(env.cameras={list(self.env.cameras)}, env.image_obs={self.env.image_obs})")


def on_cpu_from_pixels(config: ExperimentConfig) -> ExperimentConfig:
    """The fastest honest pixel recipe on a CPU (measured in `bench/results/`): a frozen ResNet-10 whose features
    are computed once per frame at insertion, so updates skip the trunk; batches of 128; the scripted operator
    takes over ~30% of steps at first; at most two env steps per learner update."""
    encoder = replace(config.agent.encoder, trunk="resnet10", frozen_trunk=True, feature_cache=True)
    return replace(config, agent=replace(config.agent, encoder=encoder, batch_size=128),
                   operator=replace(config.operator, takeover_prob=0.03, takeover_steps=15),
                   actor=replace(config.actor, max_steps_per_update=2.0, free_steps=500),
                   learner=replace(config.learner, min_online=500))
