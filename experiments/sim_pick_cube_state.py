"""Lift a cube from state alone (no cameras; the cube's pose is given): the fastest task on a CPU.

Simulation can give the cube's pose. Measured on 2 cores with these settings: 90% evaluation success
(mean of three evaluations of ten episodes) in 5.6-6.5 minutes over 3 seeds, 43-46k env steps
(`bench/results/`). 128-wide networks update ~3x faster than 256-wide ones here
(`bench/state_learner.py`) and needed no more env steps."""

from dataclasses import replace

from experiments.base import ExperimentConfig
from serl.actor.config import ActorConfig
from serl.agents.config import SACConfig
from serl.devices.scripted import ScriptedOperatorConfig
from serl.envs.sim.config import task_defaults
from serl.learner.config import LearnerConfig

CONFIG = ExperimentConfig(
    demos_dir="demos/sim_pick_cube_state",
    env_id="serl/PandaPickCube-v0",
    env=replace(task_defaults("pick_cube"), image_obs=False, object_pose=True),
    agent=SACConfig(grasp_critic=True, hidden_dims=(128, 128)),
    # ~30% of steps at first
    operator=ScriptedOperatorConfig(takeover_prob=0.03, takeover_steps=15),
    # at most one env step per learner update
    actor=ActorConfig(max_steps_per_update=1.0, free_steps=500),
    learner=LearnerConfig(min_online=500, target_eval_success=0.8, max_minutes=30.0),
)
