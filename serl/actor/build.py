"""The one way an actor is wired to its env and transport, for `serl actor`, `serl train` (whose
actor process is `serl actor`) and `serl train --single-process`, so every mode runs the same code,
frame codec included. The transport's spec and the weights template come from the env contract
(`policy_spaces`) and `jax.eval_shape` (`policy_params_template`), never from a built agent; the
env built here must match the contract, as the learner takes its spaces from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from serl.actor.config import MissingKey
from serl.actor.frames import FrameView, RoundtripAdder, frame_view
from serl.actor.loop import Actor
from serl.commands.runtime import build_env, handshake_info, transition_spec
from serl.data import TransitionSpec
from serl.envs.contract import policy_gripper, policy_spaces
from serl.transport.interfaces import Adder, StatsSink, VariableClient


@dataclass(frozen=True)
class ActorSide:
    """The actor's end of a transport."""

    # where transitions go
    adder: Adder
    # where weights come from
    client: VariableClient
    # where episode reports go
    stats: StatsSink
    # the camera frames as the learner decodes them (what the policy sees)
    view: FrameView
    # transitions this actor id has ever produced (the next sequence number)
    produced: int = 0
    # why the learner refused this actor, if it did
    link_error: Callable[[], str | None] = lambda: None
    # closes the transport (after the actor)
    close: Callable[[], None] = lambda: None
    # the learner's newest status and when it came (`StatusSource.learner_status`)
    learner_status: Callable[[], tuple | None] = lambda: None
    # whether the learner's link is up (None: no link, the learner is in this process)
    connected: Callable[[], bool | None] = lambda: None
    # the spool's fill, 0..1 (None: no spool)
    spool_fill: Callable[[], float | None] = lambda: None


def actor_spec(config) -> TransitionSpec:
    """The transitions a task's actor produces, by the contract (what its learner stores)."""
    return TransitionSpec.from_spaces(*policy_spaces(config.env, config.wrappers))


def inprocess_actor_side(transport, config, first_sequence: int = 0) -> ActorSide:
    """The actor's end of an `InProcessTransport`; `first_sequence` continues an actor whose
    earlier transitions the learner already stored (a resumed run). Frames reach the learner
    through the same codec round trip as over ZeroMQ."""
    actor_id, view = config.actor.actor_id, frame_view(config)
    adder = RoundtripAdder(transport.adder(actor_id, first_sequence), view)
    return ActorSide(adder, transport.variable_client(), transport.stats_sink(actor_id), view,
                     produced=first_sequence, learner_status=transport.status.learner_status)


def zmq_actor_side(config, actor_dir: Path, run: str) -> ActorSide:
    """A `ZmqActorTransport` to the config's learner for run `run`, spooling to
    `actor_dir/<actor_id>/spool` (its next sequence continues across restarts)."""
    from serl.agents.factory import policy_params_template
    from serl.transport.keys import ActorCurve
    from serl.transport.zmq_actor import ZmqActorTransport

    t, a, spec, view = config.transport, config.actor, actor_spec(config), frame_view(config)
    observation_space, _ = policy_spaces(config.env, config.wrappers)
    # received weights must match this tree exactly
    template = policy_params_template(config.agent, observation_space, spec.action_dim,
                                      config.seed)
    curve = None
    if t.curve_keys:  # the key named after this actor id: the only one the learner accepts for it
        try:
            curve = ActorCurve.for_actor(Path(t.curve_keys) / "actor", a.actor_id)
        except FileNotFoundError as err:
            raise MissingKey(str(err)) from err
    transport = ZmqActorTransport(t.learner_host, t.data_port, t.weights_port, a.actor_id, spec,
                                  handshake_info(config, spec, run),
                                  Path(actor_dir) / a.actor_id / "spool", template, curve,
                                  frames=view.codec, frame_cache=view.cache,
                                  spool_capacity_bytes=int(t.spool_capacity_gb * (1 << 30)))
    return ActorSide(transport.adder(), transport.variable_client(), transport.stats_sink(), view,
                     produced=transport.spool.next_sequence,
                     link_error=lambda: transport.refused, close=transport.close,
                     learner_status=transport.learner_status,
                     connected=lambda: transport.connected, spool_fill=transport.spool_fill)


def build_actor(config, side: ActorSide, actor_dir: Path, env=None, dashboard=None) -> Actor:
    """The task's actor over `side`, keeping its counters in `actor_dir` and evaluation videos in
    `actor_dir/../videos`. `env` (default: `build_env(config)`, the configured operator at the
    intervention device, with the `dashboard`'s buttons beside it) must have the contract's
    spaces; the caller closes it (`actor.env`). `dashboard` (`serl.dashboard.opening.Dashboard`)
    is fed at every step."""
    if env is None:
        env = build_env(config, page_controls=dashboard.controls if dashboard else None,
                        frame_view=side.view)
    expected, built = actor_spec(config), transition_spec(env)
    if built != expected:
        env.close()
        raise ValueError(f"the env of {config.env_id} does not match the env contract "
                         f"(serl.envs.contract.policy_spaces): it has {built.observations}, "
                         f"the contract says {expected.observations}")
    actor_dir = Path(actor_dir)
    feed = None if dashboard is None else dashboard.feed(
        side.view, action_labels(config), config.actor.actor_id, side, env)
    return Actor(env, config.agent, config.actor, side.adder, side.client, side.stats,
                 state_dir=actor_dir, seed=config.seed, policy_view=side.view.observation,
                 produced=side.produced, link_error=side.link_error,
                 video_dir=actor_dir.parent / "videos", feed=feed)


def action_labels(config) -> tuple[str, ...]:
    """The names of the policy's action dims: its arm axes, then the gripper when it has one."""
    gripper = ("gripper",) if policy_gripper(config.env) else ()
    return (*config.wrappers.arm_axes, *gripper)
