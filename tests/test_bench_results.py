"""Seeds measured in different sessions merge into one sample-efficiency result file
(`bench/se_results.py`): a seed measured again replaces its record, the summary is recomputed, and
seeds under another protocol are refused."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from se_results import ProtocolMismatch, merge, protocol_of  # noqa: E402

PROTOCOL = {"demo_episodes": 20, "eval_episodes": 10, "takeover_prob": 0.03,
            "takeover_steps": 15, "base_policy": None}


def seed(number: int, reached: bool, steps: int | None, commit: str = "abc1234") -> dict:
    return {"seed": number, "reached": reached, "env_steps": steps,
            "updates": steps and steps * 2, "minutes": steps and steps / 1000, "commit": commit}


def record(*seeds: dict, protocol: dict = PROTOCOL, target: float = 0.9) -> dict:
    return {"bench": "sample_efficiency", "task": "sim_pick_cube", "target": target,
            "overrides": [], "protocol": protocol, "seeds": list(seeds)}


def test_protocol_is_read_from_the_recorded_config():
    config = {"demo_episodes": 20, "actor": {"eval_episodes": 10},
              "operator": {"takeover_prob": 0.03, "takeover_steps": 15}}
    assert protocol_of(config) == PROTOCOL


def test_new_seeds_join_the_file_and_the_medians_cover_all_of_them():
    first = merge(None, record(seed(0, True, 1000, "aaa")))
    both = merge(first, record(seed(1, True, 3000, "bbb"), seed(2, False, None, "bbb")))
    assert [s["seed"] for s in both["seeds"]] == [0, 1, 2]
    assert both["seeds_reached"] == "2/3"
    assert both["median_env_steps"] == 2000
    assert both["commits"] == ["aaa", "bbb"]


def test_a_seed_measured_again_replaces_its_record():
    first = merge(None, record(seed(0, False, None), seed(1, True, 4000)))
    again = merge(first, record(seed(0, True, 2000, "ccc")))
    assert [s["env_steps"] for s in again["seeds"]] == [2000, 4000]
    assert again["seeds_reached"] == "2/2"


@pytest.mark.parametrize("change", [
    {"protocol": {**PROTOCOL, "takeover_prob": 0.1}},
    {"target": 0.8},
    {"overrides": ["--agent.batch-size", "128"]},
])
def test_seeds_under_another_protocol_are_refused_naming_the_difference(change):
    earlier = merge(None, record(seed(0, True, 1000)))
    fresh = {**record(seed(1, True, 1000)), **change}
    with pytest.raises(ProtocolMismatch, match=next(iter(change))):
        merge(earlier, fresh)
