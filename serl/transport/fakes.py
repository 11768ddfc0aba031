"""Small fakes of the transport interfaces, for testing an actor or a learner loop alone (no
threads, no waiting)."""

from __future__ import annotations

from collections import deque

from serl.transport.interfaces import Params, Transition, WeightsVersion


class RecordingAdder:
    """`Adder` that keeps what it is given; everything counts as acknowledged at once."""

    def __init__(self):
        self.transitions: list[Transition] = []

    def add(self, transition: Transition) -> None:
        self.transitions.append(transition)

    def flush(self, timeout: float | None = None) -> bool:
        return True


class RecordingStatsSink:
    """`StatsSink` that keeps every episode's stats."""

    def __init__(self):
        self.episodes: list[dict] = []

    def episode(self, stats: dict) -> None:
        self.episodes.append(dict(stats))


class ScriptedVariableClient:
    """`VariableClient` that hands out queued `(version, params)`, one per poll; `push`
    queues more."""

    def __init__(self, *updates: tuple[WeightsVersion, Params]):
        self._queue = deque(updates)

    def push(self, version: WeightsVersion, params: Params) -> None:
        self._queue.append((version, params))

    def poll(self) -> tuple[WeightsVersion, Params] | None:
        return self._queue.popleft() if self._queue else None

    def wait(self, timeout: float) -> tuple[WeightsVersion, Params] | None:
        return self.poll()  # nothing arrives while waiting: a fake has no other thread
