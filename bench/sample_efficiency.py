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
    python $B --task sim_peg_insert --seeds 0 --target 0.9 --max-minutes 60 --base-mode residual

With `--base-mode residual|warm-start` a BC base is trained on the task's demos first (`serl
train-bc`, once; its time is added to every seed's minutes, as everything from the demos on
counts) and every seed trains on it (`--base-policy FILE --base-mode MODE`); the protocol records
the mode. The base's own success: `serl eval FILE` on the file it writes under `--out`.

Overrides after `--` go to every run unchanged. The seeds measured are merged into the task's
result file, `<results>/sample_efficiency_<task>.json` (`bench/se_results.py`: a seed measured again
replaces its record; seeds under another protocol, target or overrides are refused), and its plot
`<results>/sample_efficiency_<task>.png` (evaluation success and intervention rate against env steps
and minutes, one line per seed) is redrawn from the merged record, which is also printed as one
JSON line. Run folders go under `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from header import cpus, load_1m
from se_plot import plot
from se_results import ProtocolMismatch, merge, protocol_of

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


def intervention_curve(train: list[dict], window: int = 20, points: int = 200) -> list:
    """(env steps, intervention rate over the last `window` training episodes), at most `points`
    of them: the plot's third panel, kept in the result file so merged seeds redraw without their
    run folders."""
    rates = [t["intervention_rate"] for t in train]
    curve = [(t["env_steps"], round(sum(rates[max(0, i - window + 1) : i + 1])
                                    / len(rates[max(0, i - window + 1) : i + 1]), 3))
             for i, t in enumerate(train)]
    stride = max(1, -(-len(curve) // points))
    return curve[::stride]


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
        "intervention_curve": intervention_curve(train),
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


def train_base(task: str, out: Path, mode: str | None, extra: list[str]) -> tuple[float, list]:
    """With a base mode: `serl train-bc TASK` on the task's demos into `out`; (its seconds, the
    seeds' overrides with --base-policy and --base-mode). Without: (0, `extra`)."""
    if mode is None:
        return 0.0, extra
    path = out / f"{task}-bc.npz"
    path.unlink(missing_ok=True)
    start = time.time()
    subprocess.check_call([sys.executable, "-m", "serl.cli", "train-bc", task, "--out", str(path),
                           "--no-eval", *extra], stdout=subprocess.DEVNULL)
    return time.time() - start, [*extra, "--base-policy", str(path), "--base-mode", mode]


def with_base_time(result: dict, base_s: float) -> dict:
    """A seed's result with the base's training time in its minutes (all of it from the demos
    on) and beside them."""
    minutes = result["minutes"]
    return {**result, "base_training_s": round(base_s, 1),
            "minutes": None if minutes is None else round(minutes + base_s / 60, 2)}


def commit() -> str:
    """The commit measured, "-dirty" when tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def run_protocol(results: list[dict]) -> dict:
    """The protocol the seeds followed (from their recorded configs); they must agree."""
    protocols = []
    for r in results:
        recorded = Path(r["run_dir"]) / "config.json"
        if not recorded.exists():
            raise SystemExit(f"{recorded} is missing: seed {r['seed']} did not start "
                             f"(see {r['run_dir']}.log)")
        protocols.append(protocol_of(json.loads(recorded.read_text())["config"]))
    if any(p != protocols[0] for p in protocols):
        raise SystemExit(f"the seeds ran under different protocols: {protocols}")
    return protocols[0]


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
    parser.add_argument("--results", type=Path, default=Path("bench/results"),
                        help="folder of the task's merged result file and plot")
    parser.add_argument("--fresh", action="store_true",
                        help="replace the task's result file instead of merging into it")
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="run the seeds at the same time (env steps and updates stay comparable, minutes "
        "do not)",
    )
    parser.add_argument(
        "--replot", type=Path, default=None, help="redraw the plot of an earlier JSON result"
    )
    parser.add_argument("--base-mode", choices=("residual", "warm-start"), default=None,
                        help="behaviour-clone a base on the demos first (serl train-bc; its time "
                        "counts in every seed's minutes), then train each seed on it")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.replot:
        earlier = json.loads(args.replot.read_text())
        plot(earlier["seeds"], args.replot.with_suffix(".png"), earlier["target"])
        return 0
    result_file = args.results / f"sample_efficiency_{args.task}.json"
    earlier = (json.loads(result_file.read_text())
               if result_file.exists() and not args.fresh else None)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MUJOCO_GL", "egl")
    demo_s = ensure_demos(args.task, extra)
    measured = commit()
    base_s, run_extra = train_base(args.task, args.out, args.base_mode, extra)

    def go(seed):
        return start_seed(args.task, seed, args.out, args.target, args.max_minutes, run_extra)

    def finish(started):
        return with_base_time({**finish_seed(started, args.target), "commit": measured,
                               "cpus": cpus(), "parallel": args.parallel,
                               "max_minutes": args.max_minutes, "load_average_1m": load_1m(2)},
                              base_s)

    # all seeds at once: each gets a share of the CPU, so minutes are not comparable
    if args.parallel:
        results = [finish(s) for s in [go(seed) for seed in args.seeds]]
    else:
        results = [finish(go(seed)) for seed in args.seeds]
    fresh = {"bench": "sample_efficiency", "task": args.task, "target": args.target,
             "overrides": extra, "protocol": run_protocol(results),
             "demo_recording_s": round(demo_s, 1), "seeds": results}
    try:
        record = merge(earlier, fresh)
    except ProtocolMismatch as err:
        # nothing measured is lost: the new seeds go beside the file
        aside = args.out / f"sample_efficiency_{args.task}.json"
        aside.write_text(json.dumps(merge(None, fresh), indent=1) + "\n")
        print(f"{err}; this run's result is in {aside}", file=sys.stderr)
        return 1
    record["plot"] = str(result_file.with_suffix(".png"))
    args.results.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(record, indent=1) + "\n")
    plot(record["seeds"], Path(record["plot"]), args.target)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
