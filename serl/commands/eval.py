"""`serl eval RUN`: the run's latest checkpoint acting alone (deterministic policy, no
interventions) for N episodes; prints the success rate and writes a video per episode to RUN/eval/.
The run's config is rebuilt from its config.json as the class it was run with."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl eval", description=__doc__)
    parser.add_argument("run", type=Path, help="the run folder (runs/<name>)")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes")
    parser.add_argument("--no-video", action="store_true", help="do not write videos")
    parser.add_argument(
        "--seed", type=int, default=10_000, help="seed of the first episode's reset"
    )
    args = parser.parse_args(argv)
    if not (args.run / "config.json").exists():
        parser.error(f"{args.run} is not a run folder (no config.json)")
    from serl.config_io import ConfigRecordError, load_run_config

    try:
        _, config = load_run_config(args.run)
    except ConfigRecordError as err:
        parser.error(f"cannot rebuild the config of {args.run}: {err}")
    from serl.actor.build import frame_view
    from serl.actor.episode import EpisodeVideo
    from serl.agents.factory import example_observation, make_agent, policy_functions
    from serl.checkpoints import Checkpointer
    from serl.commands.runtime import build_env
    from serl.networks.trunk import trunk_fingerprint

    video = None if args.no_video else args.run / "eval"
    env = build_env(config, operator=False)
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
    view = frame_view(config)  # the policy sees frames as in training: after the wire's codec
    wins = 0
    for ep in range(args.episodes):
        recorder = EpisodeVideo(env, video, f"episode_{ep:04d}")
        obs, _ = env.reset(seed=args.seed + ep)
        done = False
        while not done:
            recorder.capture()
            action = np.asarray(evaluate(params, view.observation(obs)))
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        if recorder.capture():
            recorder.write()
        wins += bool(info["succeed"])
        print(f"episode {ep + 1}/{args.episodes}: {'success' if info['succeed'] else 'failure'}",
              flush=True)
    env.close()
    checkpointer.close()
    print(f"success {wins}/{args.episodes} ({100 * wins / args.episodes:.0f}%) with the checkpoint "
          f"at update {counters.updates}" + (f"; videos in {video}/" if video else ""))
    return 0
