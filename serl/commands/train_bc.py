"""`serl train-bc TASK`: a behaviour-cloned policy from the task's demonstrations (the config's
demos_dir; recorded first with the scripted operator if there are none, as `serl train` does), on
the task agent's observation encoder (a frozen trunk's features computed once per frame). Whole
episodes are held out: their arm mean squared error and gripper accuracy are printed beside a
constant policy's. Unless --no-eval, the policy then acts alone on the task (deterministic, no
interventions, through the same wrappers and frame codec as the actor) for --eval-episodes. The
policy is saved as a policy file (default policies/<task>-bc.npz) with a report beside it
(<file>.json); `serl eval FILE` evaluates it again."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from serl.commands.config_args import parse_task_config


def output_path(out: Path | None, task: str) -> Path:
    """--out as given when it names an .npz file, else `<task>-bc.npz` in that folder (default
    policies/)."""
    if out is not None and out.suffix == ".npz":
        return out
    return (out or Path("policies")) / f"{task}-bc.npz"


def codec_roundtrip(config):
    """Observations -> the same with every camera frame as the wire's codec returns it (what the
    policy will see), or None when frames travel unchanged."""
    from serl.actor.build import frame_view

    view = frame_view(config)
    if view.lossless:
        return None

    def roundtrip(obs: dict) -> dict:
        return {k: np.stack([view.codec.roundtrip(f) for f in v]) if k in view.camera_keys else v
                for k, v in obs.items()}

    return roundtrip


def demonstrations(config) -> dict:
    """The task's demonstration episodes by name (recorded first if the folder has none); files
    of another spec are reported and skipped; `UnusableDemos` if none loads."""
    from serl.actor.build import actor_spec
    from serl.data.demos import UnusableDemos, load_demos

    folder = Path(config.demos_dir)
    if config.demo_episodes and not any(folder.glob("*.npz")):
        from serl.commands.record_demos import record

        print(f"no demonstrations in {folder}/: recording {config.demo_episodes} with the "
              "scripted operator first", flush=True)
        record(config, folder, config.demo_episodes)
    episodes, problems = load_demos(folder, actor_spec(config))
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    if len(episodes) < 2:  # one episode is held out
        skipped = f" ({len(problems)} skipped, e.g. {problems[0]})" if problems else ""
        raise UnusableDemos(f"{len(episodes)} demonstration(s) in {folder} load for this config"
                            f"{skipped}, behaviour cloning needs at least 2; record more with "
                            "`serl record-demos TASK` or name another folder (--demos-dir)")
    return episodes


def evaluate_policy(config, params, agent, action_dim: int, episodes: int, seed: int) -> dict:
    """Success of the policy acting alone on the task's env, as `serl eval FILE` runs it."""
    from serl.actor.build import frame_view
    from serl.agents.bc import policy_function
    from serl.commands.eval import run_episodes
    from serl.commands.runtime import build_env

    evaluate = policy_function(agent, action_dim)
    env = build_env(config, operator=False)
    try:
        wins = run_episodes(env, lambda obs: evaluate(params, obs), frame_view(config), episodes,
                            seed, out=lambda line: print(line, flush=True))
    finally:
        env.close()
    return {"episodes": episodes, "successes": wins, "success_rate": wins / episodes,
            "seed": seed}


def errors_line(name: str, errors: dict) -> str:
    grip = errors.get("gripper_accuracy")
    return (f"{name}: arm MSE {errors['arm_mse']:.4f}"
            + ("" if grip is None else f", gripper accuracy {grip:.3f}"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl train-bc", description=__doc__)
    parser.add_argument("--out", type=Path, default=None,
                        help="policy file (.npz) or folder for <task>-bc.npz (default: policies/)")
    parser.add_argument("--force", action="store_true", help="replace an existing policy file")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation episodes")
    parser.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes")
    parser.add_argument("--eval-seed", type=int, default=10_000,
                        help="seed of the first evaluation episode's reset (as serl eval's)")
    args, config = parse_task_config(parser, argv)
    path = output_path(args.out, args.task)
    if path.exists() and not args.force:
        parser.error(f"{path} exists: pass --force to replace it, or --out another file")
    if args.eval_episodes < 1:
        parser.error(f"--eval-episodes must be at least 1, got {args.eval_episodes}")
    from serl.commands.errors import refusal, run_command
    from serl.networks.config import check_trunk_weights

    if code := refusal("serl train-bc", lambda: check_trunk_weights(config.agent.encoder)):
        return code  # before demos are recorded
    return run_command("serl train-bc", lambda: train_and_save(config, args, path))


def train_and_save(config, args, path: Path) -> int:
    from serl.agents import bc
    from serl.agents.policy_file import save_policy
    from serl.durable import write_json
    from serl.envs.contract import policy_gripper
    from serl.envs.franka_config import FrankaEnvConfig

    episodes = demonstrations(config)
    agent = bc.policy_agent_config(config.agent, config.bc, policy_gripper(config.env))
    print(f"behaviour cloning on {len(episodes)} demonstrations in {config.demos_dir}/", flush=True)
    params, report = bc.train(episodes, agent, config.bc, prepare=codec_roundtrip(config),
                              log=lambda line: print(line, flush=True))
    print(errors_line(f"held-out ({len(report['validation_episodes'])} episodes)",
                      report["validation"]))
    print(errors_line("constant policy on them", report["validation_baseline"]))
    header = dict(kind="bc", config=config, task=args.task, agent=agent)
    report["eval"] = None
    # saved before the evaluation too: a failing env never costs the trained policy
    saved = save_policy(path, params, report=report, **header)
    real_rig = isinstance(config.env, FrankaEnvConfig) and not config.env.launch_sim
    if real_rig and not args.no_eval:
        print(f"no evaluation on a real rig here: run `serl eval {path}` when the rig is ready")
    elif not args.no_eval:
        action_dim = saved["action_space"]["dim"]
        report["eval"] = evaluate_policy(config, params, agent, action_dim, args.eval_episodes,
                                         args.eval_seed)
        # the identity covers the weights and architecture, not the report: it is unchanged
        saved = save_policy(path, params, report=report, **header)
        print(f"evaluation: {report['eval']['successes']}/{args.eval_episodes} successes")
    report = {"task": args.task, "policy_file": str(path), "identity": saved["identity"],
              **report}
    write_json(path.with_suffix(".json"), report, indent=1)
    summary = ("validation", "validation_baseline", "eval", "identity")
    print(json.dumps({k: report[k] for k in summary}))
    print(f"saved {path} (report {path.with_suffix('.json')}); next: serl eval {path}")
    return 0
