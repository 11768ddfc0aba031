"""Simulated env steps per second, with both 128x128 cameras rendering and without images, on one
core.

Prints one JSON line. Run: `.venv/bin/python bench/sim_step.py [--steps N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from header import machine


def steps_per_second(env_id: str, image_obs: bool, steps: int) -> float:
    import gymnasium as gym

    import serl  # noqa: F401

    env = gym.make(env_id, image_obs=image_obs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, 7)).astype(np.float32)
    for a in actions[:20]:  # warm up the renderer and caches
        env.step(a)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--env-id", default="serl/PandaPickCube-v0")
    args = parser.parse_args()
    # Mesa's software rasteriser: one thread, like the rest
    os.environ.setdefault("LP_NUM_THREADS", "1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    images = steps_per_second(args.env_id, True, args.steps)
    state = steps_per_second(args.env_id, False, args.steps)
    import mujoco

    print(json.dumps({
        "bench": "sim_step", "env_id": args.env_id, "steps": args.steps, "cores": 1,
        "steps_per_s_two_cameras_128": round(images, 1), "steps_per_s_state_only": round(state, 1),
        "target_steps_per_s_images": 200, "mujoco": mujoco.__version__,
        "gl": os.environ.get("MUJOCO_GL"),
        "machine": machine(),
    }))


if __name__ == "__main__":
    main()
