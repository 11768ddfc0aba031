"""Learner updates per second on the state task (`sim_pick_cube_state`'s hybrid agent, 25-D state:
19 arm values + the privileged object pose) for several MLP widths and batch sizes: the bare jitted
`update`, no replay sampling. This is what chose the task's 128-wide networks (see
`docs/design-notes.md`).

Run: `JAX_PLATFORMS=cpu .venv/bin/python bench/state_learner.py [--updates 400]`. Prints one JSON
line.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from header import cpus, load_1m

STATE_DIM, ACTION_DIM = 25, 7
VARIANTS = (((256, 256), 256), ((128, 128), 256), ((256, 256), 128), ((128, 128), 128))


def updates_per_s(cfg, n: int) -> float:
    import jax
    import numpy as np

    from serl.agents.hybrid import HybridAgent

    obs = {"state": np.zeros(STATE_DIM, np.float32)}
    agent = HybridAgent.create(jax.random.PRNGKey(0), obs, ACTION_DIM, cfg)
    one = {"observations": obs, "next_observations": obs,
           "actions": np.zeros(ACTION_DIM, np.float32), "rewards": np.float32(0),
           "masks": np.float32(1), "grasp_penalty": np.float32(0)}
    rng = np.random.default_rng(0)
    shape = (cfg.critic_actor_ratio, cfg.batch_size)
    batch = jax.tree.map(lambda x: rng.uniform(-1, 1, (*shape, *np.shape(x))).astype(np.float32),
                         one)
    agent, _ = agent.update(batch)  # compile
    jax.block_until_ready(agent)
    start = time.perf_counter()
    for _ in range(n):
        agent, _ = agent.update(batch)
    jax.block_until_ready(agent)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=400, help="timed updates per variant")
    args = parser.parse_args()
    import experiments

    base = experiments.load("sim_pick_cube_state").agent
    results = [{"hidden_dims": list(h), "batch_size": b,
                "updates_per_s": round(updates_per_s(replace(base, hidden_dims=h, batch_size=b),
                                                     args.updates), 1)} for h, b in VARIANTS]
    print(json.dumps({"bench": "state_learner", "task": "sim_pick_cube_state",
                      "state_dim": STATE_DIM, "critic_ensemble": base.critic_ensemble_size,
                      "critic_actor_ratio": base.critic_actor_ratio, "variants": results,
                      "cpus": cpus(), "load_average_1m": load_1m(2)}))


if __name__ == "__main__":
    main()
