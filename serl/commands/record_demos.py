"""`serl record-demos TASK [--device scripted|spacemouse|gamepad|keyboard] [--n N] [--out DIR]`:
record demonstrations.

The operator drives through the same intervention path as during training (in simulation the
scripted operator by default); while nobody acts the robot holds. Only successful episodes are kept
(the env's success, or the operator's "mark_success"; an aborted episode never is), each saved
atomically as its own file and appended to the demos folder. Ctrl+C (or SIGTERM) stops at once: the
episode in progress is dropped, a file being written is finished, so nothing half-written is ever
left behind."""

from __future__ import annotations

import argparse
import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from serl.commands.config_args import parse_task_config


def hold(env) -> np.ndarray:
    """The "policy" while recording: no motion, gripper unchanged, in the policy's action space."""
    return np.zeros(env.action_space.shape, np.float32)


def next_episode_id(folder: Path) -> int:
    """One past the largest episode id already in `folder`, so appended demos never reuse an id (or,
    in simulation, a reset seed); unreadable files are skipped here and reported when loaded."""
    ids = [-1]
    for path in Path(folder).glob("*.npz"):
        try:
            with np.load(path, allow_pickle=False) as data:
                ids.append(int(np.max(data["episode_id"])))
        except Exception:  # a damaged file is the loader's to report, by name
            continue
    return max(ids) + 1


def keep(info: dict) -> bool:
    return bool(info.get("succeed", False)) and not info.get("aborted", False)


def record_episode(
    env, seed: int, episode: int, stop: threading.Event
) -> tuple[list[dict] | None, dict]:
    """One episode's transitions and its last info; None for the transitions if `stop` interrupted
    it."""
    from serl.actor.episode import transition

    obs, info = env.reset(seed=seed)
    steps, done, still = [], False, hold(env)
    while not done:
        if stop.is_set():
            return None, info
        next_obs, reward, terminated, truncated, info = env.step(still)
        steps.append(
            transition(
                obs, still, reward, next_obs, terminated, truncated, info, episode, len(steps), None
            )
        )
        obs, done = next_obs, terminated or truncated
    return steps, info


def record(
    config,
    folder: Path,
    count: int,
    max_attempts: int | None = None,
    stop: threading.Event | None = None,
    out: Callable[[str], None] = print,
) -> list[Path]:
    """Record until `count` successful episodes are saved in `folder` (or `max_attempts`, or
    `stop`); returns the paths saved."""
    from serl.commands.runtime import build_env, transition_spec
    from serl.data import stack
    from serl.data.demos import save_episode

    stop = stop or threading.Event()
    if config.device.kind == "scripted":  # the simulated operator drives every step
        config = dataclasses.replace(config, operator=config.operator.driving())
    env = build_env(config)
    env.controls.set_operator_stop(stop)  # a pause or reset confirmation ends on Ctrl+C
    if config.device.kind == "keyboard":  # said once the device reads the terminal, not before
        keys = ", ".join(f"{k!r}: {role}" for k, role in config.device.keyboard.keys)
        out(f"keyboard teleop ({keys}); Ctrl+C stops")
    spec, first = transition_spec(env), next_episode_id(folder)
    saved, attempts, start = [], 0, time.monotonic()
    try:
        while (
            len(saved) < count
            and not stop.is_set()
            and (max_attempts is None or attempts < max_attempts)
        ):
            episode = first + attempts
            steps, info = record_episode(env, config.seed + 100_000 + episode, episode, stop)
            if steps is None:
                out("interrupted: the episode in progress was dropped")
                break
            attempts += 1
            if keep(info):
                saved.append(save_episode(folder, stack(steps), spec))
            out(
                f"kept {len(saved)}/{count} | attempts {attempts} | success "
                f"{len(saved) / attempts:.0%} | "
                f"last {'kept' if keep(info) else 'dropped'} ({len(steps)} steps) | "
                f"{time.monotonic() - start:.0f} s"
            )
    finally:
        env.close()
    return saved


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl record-demos", description=__doc__)
    parser.add_argument(
        "--n", type=int, default=None, help="episodes to keep (default: the config's demo_episodes)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="demos folder (default: the config's demos_dir)"
    )
    parser.add_argument(
        "--device",
        choices=["scripted", "spacemouse", "gamepad", "keyboard"],
        default=None,
        help="who drives (default: the config's device.kind; scripted in simulation)",
    )
    args, config = parse_task_config(parser, argv)
    # after the parse: `serl record-demos --help` imports nothing heavy
    from serl.commands.runtime import stop_on_signals

    if args.n is not None and args.n < 1:
        parser.error(f"--n must be at least 1, got {args.n}")
    if args.device is not None:
        config = dataclasses.replace(
            config, device=dataclasses.replace(config.device, kind=args.device)
        )
    folder = args.out or Path(config.demos_dir)
    saved = record(
        config,
        folder,
        args.n or config.demo_episodes,
        stop=stop_on_signals(),
        out=lambda line: print(line, flush=True),
    )
    print(f"saved {len(saved)} demonstrations to {folder}/", flush=True)
    return 0
