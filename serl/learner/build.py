"""The one way a learner is wired to its transport, for `serl learner`, `serl train` (whose
learner process is `serl learner`) and `serl train --single-process`: its spaces come from the env
contract (`serl.envs.contract.policy_spaces`), so no env, simulator or renderer is built here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from serl.commands.runtime import handshake_info
from serl.data import TransitionSpec
from serl.envs.contract import policy_spaces
from serl.learner.config import ListenError
from serl.learner.loop import Learner
from serl.learner.prior import PriorSource
from serl.transport.interfaces import StatusPublisher, TransitionSource, WeightsPublisher


@dataclass(frozen=True)
class LearnerSide:
    """The learner's end of a transport."""

    # where the actors' transitions come from
    source: TransitionSource
    # where the policy's weights go
    publisher: WeightsPublisher
    # closes the transport (after the learner)
    close: Callable[[], None] = lambda: None
    # where the learner's status goes (the actors' dashboards)
    status: StatusPublisher | None = None


def learner_spec(config) -> TransitionSpec:
    """The transitions a task's learner stores: from the contract's policy spaces."""
    return TransitionSpec.from_spaces(*policy_spaces(config.env, config.wrappers))


def inprocess_learner_side(transport) -> LearnerSide:
    """The learner's end of an `InProcessTransport` (single-process training)."""
    return LearnerSide(transport.transition_source(), transport.publisher(),
                       status=transport.status)


def zmq_learner_side(config, run: str) -> LearnerSide:
    """A `ZmqLearnerTransport` serving the actors of run `run` on the config's ports; a port in
    use is a `ListenError` naming it."""
    from serl.transport.keys import LearnerCurve
    from serl.transport.zmq_learner import ZmqLearnerTransport

    t, spec = config.transport, learner_spec(config)
    curve = LearnerCurve.from_dir(Path(t.curve_keys) / "learner") if t.curve_keys else None
    try:
        transport = ZmqLearnerTransport(
            spec, handshake_info(config, spec, run), t.bind_host, t.data_port, t.weights_port,
            curve, allow_unauthenticated_network=t.allow_unauthenticated_network)
    except OSError as err:
        raise ListenError(str(err)) from err
    return LearnerSide(transport, transport, transport.close, status=transport)


def build_learner(config, side: LearnerSide, run_dir: Path, resume: bool) -> Learner:
    """The task's learner over `side`, owning `run_dir` (prepared by `serl.run_dir`); `resume`
    continues from its latest checkpoint as a new incarnation."""
    observation_space, action_space = policy_spaces(config.env, config.wrappers)
    base = None
    if config.wrappers.base_policy:  # annotates demos recorded without the base's actions
        from serl.agents.base_policy import LazyBase

        base = LazyBase(config)
    warm = None
    try:
        if config.learner.warm_start:
            from serl.agents.policy_file import check_task, load_policy

            policy = load_policy(config.learner.warm_start)
            check_task(policy, config, "this run's task")
            warm = policy.params
        return Learner(config.agent, config.learner, observation_space, action_space, run_dir,
                       side.source, side.publisher, seed=config.seed, resume=resume,
                       demos_dir=config.demos_dir, prior=PriorSource.of(config),
                       status=side.status, base=base, warm_start=warm)
    finally:
        if base is not None:  # the demos are annotated: the learner never calls it again
            base.close()
