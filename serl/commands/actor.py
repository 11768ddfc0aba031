"""`serl actor TASK`: the actor half of a run: steps the env (here the simulated arm with the scripted operator
at the intervention device) with the newest weights from the learner, spooling every transition to disk first.
Restarting with the same `--run` and `--actor.actor-id` continues the sequence and resends what the learner never
acknowledged."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from serl.commands.config_args import parse_task_config


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl actor", description=__doc__)
    parser.add_argument("--run", default=None, help="run name (default: the task name); state in runs_dir/RUN/actor")
    args, config = parse_task_config(parser, argv)
    # force: importing orbax (via the configs) already gave the root logger absl's WARNING-level handler
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True)
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax's INFO lines on every checkpoint
    from serl.actor import Actor, LearnerRefused
    from serl.agents.factory import example_observation, make_agent
    from serl.commands.runtime import build_env, handshake_info, stop_on_signals, transition_spec
    from serl.transport.codec import FrameCodec
    from serl.transport.keys import ActorCurve
    from serl.transport.zmq_actor import ZmqActorTransport

    stop = stop_on_signals()
    actor_dir = Path(config.runs_dir) / (args.run or args.task) / "actor"
    env = build_env(config)
    spec = transition_spec(env)
    template = make_agent(config.agent, example_observation(env.observation_space), spec.action_dim,
                          config.seed).policy_params()  # received weights must match this tree exactly
    t, a = config.transport, config.actor
    curve = None
    if t.curve_keys:  # a key pair named after this actor if `serl keys generate` made one, else the shared one
        keys = Path(t.curve_keys) / "actor"
        curve = ActorCurve.from_dir(keys, a.actor_id if (keys / f"{a.actor_id}.key_secret").exists() else "actor")
    frames = FrameCodec(t.jpeg_quality)
    handshake = handshake_info(config, spec, actor_dir.parent.name)
    transport = ZmqActorTransport(t.learner_host, t.data_port, t.weights_port, a.actor_id, spec, handshake,
                                  actor_dir / a.actor_id / "spool", template, curve,
                                  frames=frames, spool_capacity_bytes=int(t.spool_capacity_gb * (1 << 30)))
    actor = Actor(env, config.agent, a, transport.adder(), transport.variable_client(), transport.stats_sink(),
                  state_dir=actor_dir, seed=config.seed,
                  policy_view=lambda obs: frames.roundtrip_observation(obs, spec.camera_keys),
                  produced=transport.spool.next_sequence, link_error=lambda: transport.refused,
                  video_dir=actor_dir.parent / "videos")
    try:
        counters = actor.run(stop)
    except LearnerRefused as err:  # refused by the learner: say why, no traceback (anything else has its own)
        print(f"serl actor: {err}", file=sys.stderr)
        return 1
    finally:
        transport.close()
        env.close()
    print(f"actor {a.actor_id} stopped after {counters.env_steps} env steps ({counters.episodes} episodes)")
    return 0
