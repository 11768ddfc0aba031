"""`serl eval RUN|POLICY`: a policy acting alone (deterministic, no interventions) for N episodes;
prints the success rate and writes a video per episode. RUN: a run folder, whose latest checkpoint
acts and whose config is rebuilt from its config.json as the class it was run with (videos in
RUN/eval/). POLICY: a policy file (`serl train-bc`), whose task config is rebuilt from its header
(videos in <file stem>_eval/ beside it). The policy sees frames as in training: after the wire's
codec (`serl.actor.build.frame_view`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np


def run_episodes(env, act: Callable, view, episodes: int, seed: int, video: Path | None = None,
                 out: Callable[[str], None] | None = print) -> int:
    """`episodes` episodes of `act(observation) -> action` on `env` through the frame `view`, resets
    seeded from `seed`; a video per episode in `video` (None: none). Returns the successes."""
    from serl.actor.episode import EpisodeVideo

    wins = 0
    for ep in range(episodes):
        recorder = EpisodeVideo(env, video, f"episode_{ep:04d}")
        obs, _ = env.reset(seed=seed + ep)
        done = False
        while not done:
            recorder.capture()
            action = np.asarray(act(view.observation(obs)))
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        if recorder.capture():
            recorder.write()
        wins += bool(info["succeed"])
        if out:
            out(f"episode {ep + 1}/{episodes}: {'success' if info['succeed'] else 'failure'}")
    return wins


def success_line(wins: int, episodes: int) -> str:
    return f"success {wins}/{episodes} ({100 * wins / episodes:.0f}%)"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl eval", description=__doc__)
    parser.add_argument("run", type=Path, metavar="RUN|POLICY",
                        help="the run folder (runs/<name>) or a policy file (serl train-bc)")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes")
    parser.add_argument("--no-video", action="store_true", help="do not write videos")
    parser.add_argument(
        "--seed", type=int, default=10_000, help="seed of the first episode's reset"
    )
    args = parser.parse_args(argv)
    if args.run.is_file():
        return eval_policy_file(parser, args)
    if not (args.run / "config.json").exists():
        parser.error(f"{args.run} is not a run folder (no config.json) nor a policy file")
    from serl.config_io import ConfigRecordError, load_run_config

    try:
        _, config = load_run_config(args.run)
    except ConfigRecordError as err:
        parser.error(f"cannot rebuild the config of {args.run}: {err}")
    from serl.actor.build import frame_view
    from serl.agents.factory import example_observation, make_agent, policy_functions
    from serl.checkpoints import Checkpointer
    from serl.commands.runtime import build_env
    from serl.networks.trunk import trunk_fingerprint

    video = None if args.no_video else args.run / "eval"
    # the policy (and a residual's base) sees frames as in training: after the wire's codec
    view = frame_view(config)
    env = build_env(config, operator=False, frame_view=view)
    action_dim = int(np.prod(env.action_space.shape))
    agent = make_agent(config.agent, example_observation(env.observation_space), action_dim,
                       config.seed)
    checkpointer = Checkpointer(args.run / "checkpoints")
    step = checkpointer.latest_step()
    if step is None:
        parser.error(f"{args.run} has no checkpoint yet")
    try:  # a policy head trained on another trunk's features would evaluate as noise
        checkpointer.check_trunk(step, trunk_fingerprint(config.agent.encoder))
    except ValueError as err:
        parser.error(str(err))
    agent, counters = checkpointer.restore(agent)
    _, evaluate = policy_functions(config.agent, action_dim)
    params = agent.policy_params()
    wins = run_episodes(env, lambda obs: evaluate(params, obs), view, args.episodes, args.seed,
                        video, out=lambda line: print(line, flush=True))
    env.close()
    checkpointer.close()
    print(f"{success_line(wins, args.episodes)} with the checkpoint at update {counters.updates}"
          + (f"; videos in {video}/" if video else ""))
    return 0


def eval_policy_file(parser: argparse.ArgumentParser, args) -> int:
    """`serl eval POLICY`: the file's policy on the env of its recorded task config."""
    from serl.agents.policy_file import PolicyFileError, load_policy

    try:
        policy = load_policy(args.run)
    except PolicyFileError as err:
        parser.error(str(err))
    from serl.actor.build import frame_view
    from serl.commands.runtime import build_env

    video = None if args.no_video else args.run.with_name(args.run.stem + "_eval")
    evaluate, params = policy.policy_function(), policy.params
    env = build_env(policy.config, operator=False)
    try:
        wins = run_episodes(env, lambda obs: evaluate(params, obs), frame_view(policy.config),
                            args.episodes, args.seed, video,
                            out=lambda line: print(line, flush=True))
    finally:
        env.close()
    print(f"{success_line(wins, args.episodes)} with the {policy.header['kind']} policy "
          f"{policy.identity} of task {policy.task}" + (f"; videos in {video}/" if video else ""))
    return 0
