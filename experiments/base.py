"""The base experiment configuration. A task in this folder is a small override of `ExperimentConfig`; the `serl`
command parses field overrides on top of it (`--env.max-episode-steps 50`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from serl.devices.scripted import ScriptedOperatorConfig
from serl.envs.sim.config import SimEnvConfig
from serl.envs.wrappers import PolicyEnvConfig


@dataclass(frozen=True)
class ExperimentConfig:
    env_id: str = "serl/PandaPickCube-v0"  # gymnasium id of the environment
    env: SimEnvConfig = field(default_factory=SimEnvConfig)  # the simulated task (scene, limits, rates)
    wrappers: PolicyEnvConfig = field(default_factory=PolicyEnvConfig)  # what the policy sees and how it acts
    operator: ScriptedOperatorConfig = field(default_factory=ScriptedOperatorConfig)  # the simulated person
    seed: int = 0  # seeds env resets, the operator and (later) the agent
    runs_dir: str = "runs"  # a run lives in runs_dir/<run name>/
