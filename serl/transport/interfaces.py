"""The transport's contracts: what an actor hands the learner, and what the learner hands back.

Two implementations honour them exactly: `inprocess` (threads of one process; the reference) and
ZeroMQ (across machines). Actor ids are strings stable across restarts. Each actor numbers its
transitions 0, 1, 2, ... and never reuses a number, across crashes too. Acknowledgements are
cumulative per actor: acknowledging sequence n means every sequence <= n of that actor is durable on
the learner.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

Params = Any  # a pytree of arrays: the policy parameters the actor needs, never optimizer state
Transition = dict  # one step in the schema of `serl.data` (nested dicts of arrays and scalars)


@dataclass(frozen=True, order=True)
class WeightsVersion:
    """Identifies published weights; ordered (incarnation, step) lexicographically.

    A learner restored from a checkpoint starts a new incarnation, so its weights beat every step of
    an older incarnation even though its update counter went back to the checkpoint's.
"""

    incarnation: int
    step: int

    def __post_init__(self):
        for name in ("incarnation", "step"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
                raise ValueError(f"WeightsVersion.{name} must be a non-negative int, got {value!r}")
            # numpy ints in, plain ints out: hashing and msgpack agree
            object.__setattr__(self, name, int(value))

    def to_array(self) -> np.ndarray:
        """The version as int64 `[incarnation, step]` (how it travels and is checkpointed)."""
        return np.array([self.incarnation, self.step], dtype=np.int64)

    @classmethod
    def from_array(cls, array) -> WeightsVersion:
        """Inverse of `to_array`; anything but two integers is a ValueError."""
        array = np.asarray(array)
        if array.shape != (2,) or not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"a WeightsVersion is 2 integers, got dtype {array.dtype} shape "
                             f"{array.shape}")
        return cls(int(array[0]), int(array[1]))


@dataclass(frozen=True)
class Continues:
    """A received transition's `observations` when the transport could not rebuild them: they are
    exactly the `next_observations` of the same actor's transition `sequence` (its predecessor: the
    same episode, one step earlier), which the transport no longer holds (the learner restarted,
    or the actor resent after a reconnect). The receiver takes them from its storage
    (`ReplayStorage.continued_observation`) or drops the transition as invalid."""

    sequence: int


@dataclass(frozen=True)
class IncomingBatch:
    """A run of one actor's consecutive transitions: sequences first_sequence .. last_sequence."""

    actor_id: str
    first_sequence: int
    transitions: list[Transition]

    @property
    def last_sequence(self) -> int:
        return self.first_sequence + len(self.transitions) - 1


@runtime_checkable
class Adder(Protocol):
    """Actor side: hands transitions to the learner, reliably."""

    def add(self, transition: Transition) -> None:
        """Give `transition` the actor's next sequence number and make it durable (spooled or
        queued) before returning. Never waits on the network or the learner. The transition is
        captured as it is now: later changes to its arrays do not reach the learner."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every transition added before this call is acknowledged by the learner. True
        when it is, False if `timeout` seconds pass first (None waits forever)."""
        ...


@runtime_checkable
class StatsSink(Protocol):
    """Actor side: per-episode statistics for the learner's logs."""

    def episode(self, stats: dict) -> None:
        """Report one finished episode (return, length, success, intervention count and rate, ...):
        a flat dict of str -> number/bool/str. Best effort and never blocking: unlike transitions,
        stats are not acknowledged."""
        ...


@runtime_checkable
class VariableClient(Protocol):
    """Actor side: the newest policy weights. One client per actor loop (not shared between
    threads)."""

    def poll(self) -> tuple[WeightsVersion, Params] | None:
        """Never blocks. The newest published `(version, params)` if strictly newer than the last
        one this client returned, else None. Params are host (numpy) arrays, read-only; put them on
        the device once per version."""
        ...

    def wait(self, timeout: float) -> tuple[WeightsVersion, Params] | None:
        """Like `poll`, but waits up to `timeout` seconds for something newer (for start-up); None
        on timeout."""
        ...


@dataclass(frozen=True)
class LearnerStatus:
    """What the learner tells its actors about itself (for the operator's dashboard): a flat map
    (`updates`, `updates_per_s`, `weights_step`, `buffer_online`, `buffer_demo`, `ready`, ...), the
    last evaluations as `(env_steps, success)` and the last training episodes as
    `(env_steps, success, intervention_rate)`, oldest first."""

    status: dict
    evals: tuple[tuple[float, float], ...] = ()
    train: tuple[tuple[float, float, float], ...] = ()


@runtime_checkable
class StatusPublisher(Protocol):
    """Learner side: its status, for every actor (best effort, like stats)."""

    def publish_status(self, status: LearnerStatus) -> None:
        """Make `status` the one actors receive next. Never blocks."""
        ...


@runtime_checkable
class StatusSource(Protocol):
    """Actor side: the learner's newest status."""

    def learner_status(self) -> tuple[float, LearnerStatus] | None:
        """(`time.monotonic()` when it arrived, the status), or None before the first. Never
        blocks."""
        ...


@runtime_checkable
class WeightsPublisher(Protocol):
    """Learner side: sends policy weights to every actor."""

    def publish(self, version: WeightsVersion, params: Params) -> None:
        """Make `(version, params)` the newest weights. Only the newest is kept; a slow actor skips
        versions. `version` must be strictly newer than the last one published (ValueError
        otherwise); `params` are captured now (donated or updated device buffers later do not
        matter)."""
        ...


@runtime_checkable
class VariableSource(Protocol):
    """Learner side: the weights last published (what a late-joining actor is given)."""

    def latest(self) -> tuple[WeightsVersion, Params] | None:
        """The newest published `(version, params)`, or None before the first publish.
        Never blocks."""
        ...


@runtime_checkable
class TransitionSource(Protocol):
    """Learner side: transitions from every actor, redelivered until acknowledged."""

    def receive(self, max_items: int, timeout: float) -> list[IncomingBatch]:
        """Up to `max_items` batches (not transitions), fair across actors, each actor's in sequence
        order. Waits up to `timeout` seconds for the first one (0: never waits); [] when none came.
        After a learner restart a batch may start at or below the learner's watermark: drop what it
        already stored, then acknowledge. A transition's `observations` may be a `Continues`
        (only ever for its predecessor's `next_observations`, never for a guess)."""
        ...

    def acknowledge(self, actor_id: str, last_sequence: int) -> None:
        """Declare every sequence <= `last_sequence` of `actor_id` durable in the learner's storage
        (call only after it is). Acknowledged sequences are never delivered again and the actor may
        trim its spool up to them. Repeating or lowering an acknowledgement is a no-op;
        acknowledging beyond what was delivered is a ValueError."""
        ...

    def stats(self) -> list[dict]:
        """Drain the episode stats received since the last call, oldest first, each with an
        `actor_id` key."""
        ...


def check_acknowledgement(actor_id: str, last_sequence: int, delivered_end: int | None) -> None:
    """The ValueErrors of `TransitionSource.acknowledge`: an unknown actor (`delivered_end` None) or
    a sequence that was never delivered (at or past `delivered_end`)."""
    if delivered_end is None:
        raise ValueError(f"acknowledgement for unknown actor {actor_id!r}")
    if last_sequence >= delivered_end:
        raise ValueError(f"actor {actor_id!r}: cannot acknowledge {last_sequence}, "
                         f"only sequences < {delivered_end} were delivered")


def snapshot(tree):
    """What "captured" means above (`Adder.add`, `WeightsPublisher.publish`), shared by both
    implementations. A deep copy as the wire would deliver it: mappings become dicts, array-likes
    (numpy, JAX) become new read-only numpy arrays, lists and tuples are rebuilt, other leaves
    (numbers, str, bool) are kept."""
    if isinstance(tree, Mapping):
        return {key: snapshot(value) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return (list if isinstance(tree, list) else tuple)(snapshot(value) for value in tree)
    if isinstance(tree, np.generic):
        return tree  # numpy scalars are immutable already
    if hasattr(tree, "__array__"):
        array = np.array(tree, copy=True)
        # shared with every reader, and a decoded wire buffer is read-only too
        array.flags.writeable = False
        return array
    return tree
