"""The actor's counters that never go backwards: transitions produced (the next sequence number),
the next episode id and the operator's take-over scale, kept in `<state_dir>/<actor_id>.json`.

An episode id is claimed on disk (atomically and durably: fsync of the file and its folder) before
any of its transitions exists, so no crash can make a restarted actor reuse one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from serl.durable import write_json
from serl.transport.interfaces import WeightsVersion


@dataclass
class ActorCounters:
    # transitions produced, ever (== the next sequence number)
    env_steps: int = 0
    # next episode id
    episodes: int = 0
    # version of the params now in use
    weights: WeightsVersion | None = None
    # the scripted operator's take-over scale from the last evaluation
    takeover_scale: float = 1.0


class CounterFile:
    """`path` holds the counters' durable part (None: nothing is kept, as in a test)."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path is not None else None

    def load(self) -> ActorCounters:
        """The saved counters, or fresh ones when there is no file yet."""
        if self.path is None or not self.path.exists():
            return ActorCounters()
        saved = json.loads(self.path.read_text())
        return ActorCounters(env_steps=int(saved["env_steps"]), episodes=int(saved["episodes"]),
                             takeover_scale=float(saved.get("takeover_scale", 1.0)))

    def save(self, counters: ActorCounters) -> None:
        """Write the counters durably (a no-op without a path)."""
        if self.path is None:
            return
        write_json(self.path, {"env_steps": counters.env_steps, "episodes": counters.episodes,
                               "takeover_scale": counters.takeover_scale})

    def claim_episode(self, counters: ActorCounters) -> int:
        """Reserve the next episode id on disk before producing any of its transitions, so a
        crash mid-episode can never reuse it."""
        episode = counters.episodes
        counters.episodes += 1
        self.save(counters)
        return episode
