"""`serl scripted TASK`: the scripted operator drives a simulated task through the full policy
wrapper stack (as an operator at the SpaceMouse would); prints the success rate and writes a video
and a summary."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from serl.commands.config_args import parse_task_config


def run_episodes(config, episodes: int, video_path: Path | None) -> dict:
    from serl.commands.runtime import build_env

    # the scripted operator at the intervention device
    env = build_env(config, video_path=video_path)
    successes, lengths, interventions = [], [], 0
    start = time.monotonic()
    for ep in range(episodes):
        obs, info = env.reset(seed=config.seed + ep)
        done, steps, still = False, 0, np.zeros(env.action_space.shape, np.float32)
        while not done:
            obs, reward, terminated, truncated, info = env.step(still)
            steps += 1
            interventions += bool(info.get("intervened"))
            done = terminated or truncated
        successes.append(bool(info["succeed"]))
        lengths.append(steps)
        print(
            f"episode {ep + 1}/{episodes}: {'success' if successes[-1] else 'failure'} in {steps} "
            "steps",
            flush=True,
        )
    env.close()
    return {
        "task_env": config.env_id,
        "episodes": episodes,
        "successes": int(sum(successes)),
        "success_rate": float(np.mean(successes)),
        "mean_length": float(np.mean(lengths)),
        "intervention_rate": interventions / max(1, sum(lengths)),
        "seconds": round(time.monotonic() - start, 2),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl scripted", description=__doc__)
    parser.add_argument("--episodes", type=int, default=5, help="episodes to run")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: runs_dir/<task>-scripted)"
    )
    parser.add_argument("--no-video", action="store_true", help="do not write the video")
    args, config = parse_task_config(parser, argv)
    config = dataclasses.replace(config, operator=config.operator.driving())
    out = args.out or Path(config.runs_dir) / f"{args.task}-scripted"
    out.mkdir(parents=True, exist_ok=True)
    video = None if args.no_video or not config.env.image_obs else out / "videos"
    summary = run_episodes(config, args.episodes, video)
    summary["videos"] = sorted(str(p) for p in video.glob("*.mp4")) if video else []
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{summary['successes']}/{args.episodes} episodes succeeded ({summary['seconds']} s)")
    if video:
        print(f"videos: {video}/")
    print(f"summary: {out / 'summary.json'}")
    return 0
