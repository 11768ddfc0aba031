"""Sample efficiency of `serl train TASK` over several seeds: env steps, learner updates and
wall-clock minutes until evaluation success (no interventions) reaches the target, and how the
intervention rate falls.

Each seed is a fresh two-process run (learner + actor over loopback ZeroMQ, exactly what `serl
train` does) in its own run folder, stopped by the learner's target rule (mean of the last 3
evaluations >= target) or the minutes budget. The demonstrations are recorded once before the first
seed and their time is reported apart. Minutes count from the start of the `serl train` process
(start-up and compilation included) to the arrival of the evaluation that met the target.

    B=bench/sample_efficiency.py
    python $B --task sim_pick_cube_state --seeds 0 1 2 --target 0.9 --max-minutes 20
    python $B --task sim_pick_cube --seeds 0 1 2 --target 0.5 --max-minutes 60
    python $B --task sim_pick_cube --seeds 0 --target 0.5 -- --agent.batch-size 256

Prints one JSON line (per-seed figures and the median over seeds that reached the target) and writes
`<out>/<task>.png` (evaluation success and intervention rate against env steps and minutes, one line
per seed). Overrides after `--` go to every run unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from header import cpus, load_1m

WINDOW = 3  # evaluations averaged by the stopping rule (serl.monitor.RunMonitor.target_reached)


def read_history(run_dir: Path) -> tuple[list[dict], list[dict]]:
    train, evals = [], []
    path = run_dir / "history.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        record = json.loads(line)
        (evals if "eval_success" in record else train).append(record)
    return train, evals


def first_at_target(evals: list[dict], target: float) -> dict | None:
    """The evaluation at which the mean of the last WINDOW evaluations first reached the target."""
    for i in range(WINDOW - 1, len(evals)):
        window = [e["eval_success"] for e in evals[i - WINDOW + 1 : i + 1]]
        if sum(window) / WINDOW >= target:
            return evals[i]
    return None


def intervention_trend(train: list[dict], parts: int = 4) -> list[float]:
    """Mean intervention rate over each consecutive quarter of the training episodes."""
    if len(train) < parts:
        return []
    size = len(train) / parts
    chunks = [train[round(i * size) : round((i + 1) * size)] for i in range(parts)]
    return [round(sum(r["intervention_rate"] for r in c) / len(c), 3) for c in chunks]


def summarize(run_dir: Path, start: float, target: float, wall_s: float) -> dict:
    train, evals = read_history(run_dir)
    hit = first_at_target(evals, target)
    progress = (
        json.loads((run_dir / "learner_progress.json").read_text())
        if (run_dir / "learner_progress.json").exists()
        else {}
    )
    return {
        "reached": hit is not None,
        "env_steps": hit["env_steps"] if hit else None,
        "updates": hit["policy_step"] if hit else None,
        "minutes": round((hit["time"] - start) / 60, 2) if hit else None,
        "final_eval": evals[-1]["eval_success"] if evals else None,
        "best_eval": max((e["eval_success"] for e in evals), default=None),
        "total_env_steps": max([r["env_steps"] for r in train + evals] or [0]),
        "total_updates": progress.get("updates"),
        "episodes": len(train),
        "intervention_rate_by_quarter": intervention_trend(train),
        "wall_minutes": round(wall_s / 60, 2),
        "evals": [
            (
                e["env_steps"],
                e["policy_step"],
                round((e["time"] - start) / 60, 2),
                e["eval_success"],
            )
            for e in evals
        ],
    }


def start_seed(
    task: str, seed: int, runs_dir: Path, target: float, max_minutes: float, extra: list[str]
):
    """Start one seed's `serl train`; returns (seed, process, start time, run folder)."""
    name = f"{task}_seed{seed}"
    shutil.rmtree(runs_dir / name, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "serl.cli",
        "train",
        task,
        "--run",
        name,
        "--seed",
        str(seed),
        "--runs-dir",
        str(runs_dir),
        "--learner.target-eval-success",
        str(target),
        "--learner.max-minutes",
        str(max_minutes),
        *extra,
    ]
    print(f"[sample efficiency] {' '.join(cmd[2:])}", file=sys.stderr, flush=True)
    with open(runs_dir / f"{name}.log", "w") as log:
        return (
            seed,
            subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT),
            time.time(),
            runs_dir / name,
        )


def finish_seed(started, target: float) -> dict:
    seed, proc, start, run_dir = started
    code = proc.wait()
    return {
        "seed": seed,
        "exit_code": code,
        "run_dir": str(run_dir),
        **summarize(run_dir, start, target, time.time() - start),
    }


def ensure_demos(task: str, extra: list[str]) -> float:
    """Record the task's demonstrations once if its folder has none (as `serl train` would do inside
    the first seed's run); returns the seconds it took."""
    import experiments

    config = experiments.load(task)
    if any(Path(config.demos_dir).glob("*.npz")) or not config.demo_episodes:
        return 0.0
    start = time.time()
    subprocess.check_call(
        [sys.executable, "-m", "serl.cli", "record-demos", task, *extra], stdout=subprocess.DEVNULL
    )
    return time.time() - start


def plot(results: list[dict], path: Path, target: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4), dpi=100)
    for r in results:
        steps, _, minutes, success = (
            zip(*r["evals"], strict=True) if r["evals"] else ((), (), (), ())
        )
        axes[0].plot(steps, success, "o-", ms=3, label=f"seed {r['seed']}")
        axes[1].plot(minutes, success, "o-", ms=3, label=f"seed {r['seed']}")
        train, _ = read_history(Path(r["run_dir"]))
        rates = [t["intervention_rate"] for t in train]
        rolling = [
            sum(rates[max(0, i - 19) : i + 1]) / len(rates[max(0, i - 19) : i + 1])
            for i in range(len(rates))
        ]
        axes[2].plot([t["env_steps"] for t in train], rolling, label=f"seed {r['seed']}")
    labels = [
        ("env steps", "evaluation success (no interventions)"),
        ("minutes (2-process run, start-up included)", "evaluation success (no interventions)"),
        ("env steps", "intervention rate (last 20 training episodes)"),
    ]
    for ax, (xlabel, ylabel) in zip(axes, labels, strict=True):
        if ylabel.startswith("evaluation"):
            ax.axhline(target, color="gray", ls="--", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", default="sim_pick_cube_state")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--target", type=float, default=0.9, help="evaluation success to reach")
    parser.add_argument(
        "--max-minutes", type=float, default=20.0, help="budget per seed (the learner's clock)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench_sample_efficiency"))
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="run the seeds at the same time (env steps and updates stay comparable, minutes "
        "do not)",
    )
    parser.add_argument(
        "--replot", type=Path, default=None, help="redraw the plot of an earlier JSON result"
    )
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.replot:
        earlier = json.loads(args.replot.read_text())
        plot(earlier["seeds"], Path(earlier["plot"]), earlier["target"])
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MUJOCO_GL", "egl")
    demo_s = ensure_demos(args.task, extra)
    def go(seed):
        return start_seed(args.task, seed, args.out, args.target, args.max_minutes, extra)

    # all seeds at once: each gets a share of the CPU, so minutes are not comparable
    if args.parallel:
        results = [finish_seed(s, args.target) for s in [go(seed) for seed in args.seeds]]
    else:
        results = [finish_seed(go(seed), args.target) for seed in args.seeds]
    reached = [r for r in results if r["reached"]]
    def median(key):
        return statistics.median(r[key] for r in reached) if reached else None

    plot(results, args.out / f"{args.task}.png", args.target)
    print(
        json.dumps(
            {
                "bench": "sample_efficiency",
                "task": args.task,
                "target": args.target,
                "overrides": extra,
                "max_minutes": args.max_minutes,
                "parallel": args.parallel,
                "seeds_reached": f"{len(reached)}/{len(results)}",
                "median_env_steps": median("env_steps"),
                "median_updates": median("updates"),
                "median_minutes": median("minutes"),
                "demo_recording_s": round(demo_s, 1),
                "load_average_1m": load_1m(2),
                "cpus": cpus(),
                "plot": str(args.out / f"{args.task}.png"),
                "seeds": results,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
