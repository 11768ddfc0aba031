"""The learned reward on `serl/PandaPickCube-v0`: record sim-labelled frames from scripted-operator
episodes with near misses (about 200 success and 600 failure frames), train the classifier, then run
held-out episodes (other seeds, the same mix of successes and near misses) with the classifier as
the reward and count, per episode, how often its decision disagrees with the simulator's:

- false success: the classifier ended the episode at a step where the simulator says the task is not
  done (target <= 1 % of episodes);
- missed success: the simulator's task was done at some step but the classifier never ended the
  episode (target <= 5 %).

The simulator does not end episodes here (`env.reward=dense`), so only the classifier does. Prints
one JSON line. Run: `.venv/bin/python bench/reward_classifier.py [--episodes 200]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time

import numpy as np
from header import cpus, machine


def held_out(env, near_miss, episodes: int, seed: int) -> dict:
    counts = {"episodes": episodes, "sim_success_episodes": 0, "classifier_success_episodes": 0,
              "false_success_episodes": 0, "missed_success_episodes": 0}
    by_mode: dict[str, list[int]] = {}  # mode -> [episodes, false successes, missed successes]
    for i in range(episodes):
        env.reset(seed=seed + i)
        mode = near_miss.new_episode()
        tally = by_mode.setdefault(mode, [0, 0, 0])
        tally[0] += 1
        sim_done = fired = False
        done = False
        while not done:
            _, reward, terminated, truncated, info = env.step(
                np.zeros(env.action_space.shape, np.float32))
            sim_done |= bool(info["succeed"])
            if reward > 0:
                fired = True
                if not info["succeed"]:
                    counts["false_success_episodes"] += 1
                    tally[1] += 1
            done = terminated or truncated
        counts["sim_success_episodes"] += sim_done
        counts["classifier_success_episodes"] += fired
        counts["missed_success_episodes"] += sim_done and not fired
        tally[2] += sim_done and not fired
    counts["false_success_rate"] = counts["false_success_episodes"] / episodes
    counts["missed_success_rate"] = counts["missed_success_episodes"] / episodes
    counts["by_mode"] = {m: dict(zip(("episodes", "false_success", "missed_success"), t,
                                     strict=True)) for m, t in sorted(by_mode.items())}
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=200, help="held-out episodes")
    parser.add_argument("--positives", type=int, default=200)
    parser.add_argument("--negatives", type=int, default=600)
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps (default: the config's)")
    parser.add_argument("--seed", type=int, default=0,
                        help="offsets every seed (recording, training, held out)")
    args = parser.parse_args()

    import experiments
    from serl.agents.classifier import train
    from serl.commands.record_labels import sim_env
    from serl.reward.recording import record_labels
    from serl.reward.store import ClassifierFolder, save_version

    config = experiments.load("sim_pick_cube")
    reward = config.reward
    cfg = dataclasses.replace(reward.classifier, seed=reward.classifier.seed + args.seed,
                              steps=args.steps or reward.classifier.steps)
    rec = dataclasses.replace(reward.labels, positives=args.positives, negatives=args.negatives)

    start = time.perf_counter()
    env, near_miss = sim_env(config, seed=1 + 1000 * args.seed)
    labels = record_labels(env, cfg.image_keys, "sim", rec, seed=10_000 + 1000 * args.seed,
                           near_miss=near_miss, progress=None)
    env.close()
    record_s = time.perf_counter() - start

    start = time.perf_counter()
    params, report = train(labels, cfg, log=None)
    train_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as folder:
        save_version(folder, params, cfg, report)
        env, near_miss = sim_env(config, seed=2 + 1000 * args.seed,
                                 classifier=ClassifierFolder(folder))
        start = time.perf_counter()
        counts = held_out(env, near_miss, args.episodes, seed=500_000 + 1000 * args.seed)
        eval_s = time.perf_counter() - start
        env.close()

    print(json.dumps({
        "benchmark": "reward_classifier", "env": "serl/PandaPickCube-v0",
        "cameras": list(cfg.image_keys),
        "trunk": cfg.trunk, "train_frames": len(labels), "positives": labels.positives,
        "negatives": len(labels) - labels.positives,
        "label_episodes": int(len(np.unique(labels.episodes))),
        "seed": args.seed, "training_steps": cfg.steps, "confirm_steps": cfg.confirm_steps,
        "threshold": round(report["threshold"], 4),
        "validation": {k: round(v, 4) if isinstance(v, float) else v for k,
                       v in report["validation"].items()},
        **counts, "targets": {"false_success_rate": 0.01, "missed_success_rate": 0.05},
        "record_s": round(record_s, 1), "train_s": round(train_s, 1),
        "held_out_s": round(eval_s, 1),
        "machine": f"{machine()} {cpus()} cpus",
    }))


if __name__ == "__main__":
    main()
