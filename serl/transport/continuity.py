"""Each camera frame once, the actor's side: may a transition's observations travel as a
reference to its predecessor's next observations (see `pairs` for the learner's side)?

Only when the actor knows: the observation is, value by value, the very objects it was given as the
previous transition's next observations, with the content they had then (a camera that refills one
buffer in place breaks the chain), in the same episode one step later, and that transition is the
one added just before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from serl.transport.interfaces import Transition


@dataclass(frozen=True)
class _Sent:
    """The previous transition as the actor spooled it."""

    sequence: int
    episode_id: int
    step: int
    # key -> (the next_observations value, a copy of its content when it was spooled)
    values: dict[str, tuple[Any, bytes]]


class Continuity:
    """The actor's side: may transition `sequence` refer to its predecessor's next observations?
    One thread (the actor's)."""

    def __init__(self) -> None:
        self._last: _Sent | None = None

    def follows(self, transition: Transition, sequence: int) -> bool:
        """True if `transition`'s observations are exactly what `remember` saw as the next
        observations of transition `sequence - 1`, one step later in the same episode."""
        last, obs = self._last, transition.get("observations")
        if last is None or last.sequence != sequence - 1 or not isinstance(obs, Mapping):
            return False
        try:
            same_step = (int(transition["episode_id"]) == last.episode_id
                         and int(transition["step"]) == last.step + 1)
        except (KeyError, TypeError, ValueError):
            return False
        return same_step and obs.keys() == last.values.keys() and all(
            obs[k] is value and value.tobytes() == content
            for k, (value, content) in last.values.items())

    def remember(self, transition: Transition, sequence: int) -> None:
        """`transition` was added as `sequence` (a malformed one is forgotten: nothing follows
        it)."""
        try:
            nxt = transition["next_observations"]
            values = {k: (v, v.tobytes()) for k, v in nxt.items() if isinstance(v, np.ndarray)}
            if len(values) != len(nxt):
                raise TypeError("not arrays")
            self._last = _Sent(sequence, int(transition["episode_id"]), int(transition["step"]),
                               values)
        except (KeyError, TypeError, ValueError, AttributeError):
            self._last = None

    def forget(self) -> None:
        self._last = None
