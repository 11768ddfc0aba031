"""gymnasium ids of the project's environments."""

from __future__ import annotations

import gymnasium as gym

SIM_TASKS = {
    "serl/PandaPickCube-v0": "pick_cube",
    "serl/PandaPegInsert-v0": "peg_insert",
}


def register_envs() -> None:
    for env_id, task in SIM_TASKS.items():
        if env_id not in gym.registry:
            gym.register(
                env_id, entry_point="serl.envs.sim.env:make_sim_env", kwargs={"task": task}
            )
    # a real rig (or the simulated driver) behind the robot server
    if "serl/Franka-v0" not in gym.registry:
        gym.register("serl/Franka-v0", entry_point="serl.envs.franka_env:make_franka_env")


def make(env_id: str, **kwargs) -> gym.Env:
    """gym.make for the project's ids, with an error that lists the valid ones for an unknown id."""
    register_envs()
    ours = sorted(k for k in gym.registry if k.startswith("serl/"))
    if env_id not in gym.registry:
        raise ValueError(f"unknown task id {env_id!r}; valid ids: {', '.join(ours)}")
    return gym.make(env_id, **kwargs)
