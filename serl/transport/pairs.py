"""Each camera frame once, the learner's side: a transition's observations are usually its
predecessor's next observations, and then travel as a reference to them (`codec.PREVIOUS`; the
actor says so only when it knows, see `continuity`).

The learner (`Predecessors`) keeps each actor's last decoded next observations and resolves a
reference to those very objects, so the storage links the pair by identity; when it does not hold
the predecessor (it restarted, or the actor resent after a reconnect) the transition carries a
`Continues` marker for the storage to resolve.
A reference never resolves to another step's frames: the sequence, episode and step must all
match, or the transition is dropped and named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from serl.transport.codec import PREVIOUS, TransitionCodec
from serl.transport.interfaces import Continues, Transition
from serl.transport.wire import BadMessage


@dataclass(frozen=True)
class _Decoded:
    """An actor's last decoded transition, as far as its successor needs it."""

    sequence: int
    episode_id: int
    step: int
    next_observations: dict[str, np.ndarray]


class Predecessors:
    """The learner's side: decodes each actor's transitions in sequence order and rebuilds the
    pairs. One thread (the learner's I/O thread)."""

    def __init__(self, codec: TransitionCodec):
        self._codec = codec
        self._last: dict[str, _Decoded] = {}

    def decode(self, actor_id: str, sequence: int, data: Any) -> Transition:
        """Transition `sequence` of `actor_id` from its record: a reference resolved to the
        predecessor's very `next_observations` when they were decoded here, else a `Continues`.
        BadMessage when the record is bad or its reference cannot be its predecessor's. The
        memory moves on with every transition that decodes, so a transition the storage finds
        invalid costs only itself; an undecodable record also costs its successor, whose frames
        only it carried (dropped as invalid, with the cause)."""
        transition = self._codec.decode(data)
        episode_id, step = int(transition["episode_id"]), int(transition["step"])
        last = self._last.get(actor_id)
        self._last[actor_id] = _Decoded(sequence, episode_id, step,
                                        transition["next_observations"])
        if transition["observations"] is PREVIOUS:
            transition["observations"] = self._resolve(last, sequence, episode_id, step)
        return transition

    @staticmethod
    def _resolve(last: _Decoded | None, sequence: int, episode_id: int,
                 step: int) -> dict | Continues:
        if sequence == 0 or step == 0:
            raise BadMessage("transition", f"sequence {sequence} (episode {episode_id}, step "
                             f"{step}): observations refer to a previous step, and there is none")
        if last is None or last.sequence != sequence - 1:
            return Continues(sequence - 1)
        if (last.episode_id, last.step) != (episode_id, step - 1):
            raise BadMessage("transition", f"sequence {sequence} (episode {episode_id}, step "
                             f"{step}): observations refer to sequence {sequence - 1}, which is "
                             f"episode {last.episode_id}, step {last.step}")
        return last.next_observations

    def forget(self, actor_id: str) -> None:
        """Drop what is held of `actor_id` (it said hello again): its next reference is resolved
        from the storage, which checks the stored sequence, episode and step."""
        self._last.pop(actor_id, None)
