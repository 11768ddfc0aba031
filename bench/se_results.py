"""A task's sample-efficiency result file (`bench/results/sample_efficiency_<task>.json`): seeds
measured in different sessions merged into one record under one protocol.

Three seeds of an hour do not fit in one session, so `bench/sample_efficiency.py` runs any subset of
seeds and merges them here: a seed measured again replaces its earlier record, and a seed measured
under another protocol, target or overrides is refused (the figures would not compare). Each seed
keeps its own commit, cores, load and whether it ran beside other seeds; the file's summary (seeds
reached, medians) is recomputed from all of them.

Pure functions over plain dicts; `bench/sample_efficiency.py` reads and writes the file.
"""

from __future__ import annotations

import statistics
from pathlib import Path

# What makes two seeds' figures comparable: the protocol of issue 15 (the demos, the evaluation,
# the scripted take-overs, no base policy), the target and the config overrides.
PROTOCOL_KEYS = ("demo_episodes", "eval_episodes", "takeover_prob", "takeover_steps",
                 "base_policy")
COMPARED = ("task", "target", "overrides", "protocol")


def protocol_of(config: dict) -> dict:
    """The protocol a run followed, from its recorded config (`config.json`'s "config")."""
    return {
        "demo_episodes": config["demo_episodes"],
        "eval_episodes": config["actor"]["eval_episodes"],
        "takeover_prob": config["operator"]["takeover_prob"],
        "takeover_steps": config["operator"]["takeover_steps"],
        "base_policy": base_of(config),
    }


def base_of(config: dict) -> dict | None:
    """The base policy a run trained on, and how (None: plain RL, issue 15's protocol)."""
    residual = (config.get("wrappers") or {}).get("base_policy")
    warm = (config.get("learner") or {}).get("warm_start")
    if residual:
        return {"mode": "residual", "base": Path(residual).name}
    if warm:
        return {"mode": "warm-start", "base": Path(warm).name}
    return None


class ProtocolMismatch(ValueError):
    """Seeds measured under different protocols, targets or overrides cannot share a file."""


def mismatch(earlier: dict, fresh: dict) -> list[str]:
    """What differs between two result records in the fields that make figures comparable."""
    return [f"{key}: file has {earlier.get(key)!r}, this run {fresh.get(key)!r}"
            for key in COMPARED if earlier.get(key) != fresh.get(key)]


def summary(seeds: list[dict]) -> dict:
    """Seeds reached and the medians over the seeds that reached the target."""
    reached = [s for s in seeds if s["reached"]]

    def median(key):
        return statistics.median(s[key] for s in reached) if reached else None

    return {
        "seeds_reached": f"{len(reached)}/{len(seeds)}",
        "median_env_steps": median("env_steps"),
        "median_updates": median("updates"),
        "median_minutes": median("minutes"),
        "commits": sorted({s["commit"] for s in seeds}),
    }


def merge(earlier: dict | None, fresh: dict) -> dict:
    """`fresh` (this invocation's record) merged into `earlier` (the file's, or None): seeds by
    number, this run's replacing the file's. Raises ProtocolMismatch naming what differs."""
    if earlier is not None:
        differs = mismatch(earlier, fresh)
        if differs:
            raise ProtocolMismatch(
                "this run does not compare with the seeds already in the result file ("
                + "; ".join(differs) + "); write it elsewhere (--results DIR) or start the file "
                "again (--fresh)")
    by_seed = {s["seed"]: s for s in (earlier or {}).get("seeds", [])}
    by_seed.update({s["seed"]: s for s in fresh["seeds"]})
    seeds = [by_seed[k] for k in sorted(by_seed)]
    merged = {**fresh, "seeds": seeds}
    merged.update(summary(seeds))
    return merged
