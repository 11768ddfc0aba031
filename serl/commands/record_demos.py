"""`serl record-demos TASK`: record demonstrations. In simulation the scripted operator drives (a person with a
SpaceMouse on a real rig); only successful episodes are kept, each saved atomically as its own file, appended to
the task's demos folder. Ctrl+C stops between files: nothing half-written is ever left behind."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from serl.commands.config_args import parse_task_config


def record(config, folder: Path, count: int, max_attempts: int | None = None) -> list[Path]:
    """Record until `count` successful episodes are saved in `folder`; returns their paths."""
    from serl.actor import transition
    from serl.commands.runtime import build_env, transition_spec
    from serl.data import stack
    from serl.data.demos import save_episode

    operator = dataclasses.replace(config.operator, takeover_prob=1.0)  # the operator drives every step
    env = build_env(dataclasses.replace(config, operator=operator))
    spec = transition_spec(env)
    saved, attempts, start = [], 0, time.monotonic()
    try:
        while len(saved) < count and (max_attempts is None or attempts < max_attempts):
            obs, _ = env.reset(seed=config.seed + 100_000 + attempts)
            steps, done = [], False
            while not done:
                next_obs, reward, terminated, truncated, info = env.step(np.zeros(7, np.float32))
                steps.append(transition(obs, np.zeros(7), reward, next_obs, terminated, truncated, info, attempts,
                                        len(steps), None))
                obs, done = next_obs, terminated or truncated
            attempts += 1
            if info["succeed"]:
                saved.append(save_episode(folder, stack(steps), spec))
            print(f"kept {len(saved)}/{count} | attempts {attempts} | success {len(saved) / attempts:.0%} | "
                  f"{time.monotonic() - start:.0f} s", flush=True)
    finally:
        env.close()
    return saved


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl record-demos", description=__doc__)
    parser.add_argument("--n", type=int, default=None, help="episodes to keep (default: the config's demo_episodes)")
    parser.add_argument("--out", type=Path, default=None, help="demos folder (default: the config's demos_dir)")
    args, config = parse_task_config(parser, argv)
    folder = args.out or Path(config.demos_dir)
    saved = record(config, folder, args.n or config.demo_episodes)
    print(f"saved {len(saved)} demonstrations to {folder}/")
    return 0
