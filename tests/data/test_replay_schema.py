"""The transition schema: strict validation that names the field, stacking, canonical spec forms."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from replay_helpers import SMALL_SPEC, assert_trees_equal, episode

from serl.data import TransitionSpec, concatenate, stack, take, unstack


@pytest.fixture
def good():
    return episode(np.random.default_rng(0), SMALL_SPEC, 7, 3)


@pytest.mark.timeout(10)
def test_valid_transition_passes(good):
    for t in good:
        SMALL_SPEC.validate(t)
    assert SMALL_SPEC.validate_batch(stack(good)) == 3


@pytest.mark.timeout(10)
@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("rewards"), "rewards: missing"),
    (lambda t: t["observations"].pop("wrist"), "observations/wrist: missing"),
    (lambda t: t.update(extra=np.float32(0)), "extra: unexpected key"),
    (lambda t: t["next_observations"].update(depth=np.zeros(1)),
     "next_observations/depth: unexpected key"),
    (lambda t: t.update(rewards=np.float64(1)), "rewards: dtype float64, expected float32"),
    (lambda t: t.update(dones=1.0), "dones: expected a numpy bool value, got float"),
    (lambda t: t.update(actions=np.zeros(3, np.float32)), "actions: shape (3,), expected (2,)"),
    (lambda t: t["observations"].update(front=np.zeros((4, 4, 4), np.uint8)),
     "observations/front: shape"),
    (lambda t: t["observations"]["state"].__setitem__(1, np.nan), "observations/state: non-finite"),
    (lambda t: t["actions"].__setitem__(0, np.inf), "actions: non-finite"),
    (lambda t: t.update(rewards=np.float32(np.nan)), "rewards: non-finite"),
])
def test_invalid_transition_is_refused_naming_the_field(good, edit, message):
    bad = good[0]
    bad["observations"] = dict(bad["observations"])
    bad["next_observations"] = dict(bad["next_observations"])
    bad["actions"] = bad["actions"].copy()
    bad["observations"]["state"] = bad["observations"]["state"].copy()
    edit(bad)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SMALL_SPEC.validate(bad)
    assert SMALL_SPEC.problems(bad)


@pytest.mark.timeout(10)
def test_batch_validation_names_the_row(good):
    batch = stack(good)
    batch["rewards"][2] = np.nan
    with pytest.raises(ValueError, match="row 2: rewards: non-finite"):
        SMALL_SPEC.validate_batch(batch)
    assert list(SMALL_SPEC.nonfinite_rows(batch)) == [2]


@pytest.mark.timeout(10)
def test_stack_unstack_take_concatenate_round_trip(good):
    batch = stack(good)
    assert batch["observations"]["front"].shape == (3, 4, 4, 3)
    assert batch["policy_version"].shape == (3, 2)
    assert_trees_equal(stack(unstack(batch)), batch)
    assert_trees_equal(concatenate([take(batch, slice(0, 1)), take(batch, slice(1, None))]), batch)
    other = dict(batch, extra=batch["rewards"])
    with pytest.raises(ValueError, match="extra"):
        concatenate([batch, other])


@pytest.mark.timeout(10)
def test_spec_is_canonical_and_round_trips_through_json():
    a = TransitionSpec({"state": ((3,), "float32"), "cam": ((8, 8, 3), np.uint8)}, 2)
    b = TransitionSpec({"cam": ([8, 8, 3], "uint8"), "state": ([3], np.float32)}, 2)
    assert a == b and hash(a) == hash(b) and a.fingerprint() == b.fingerprint()
    assert TransitionSpec.from_json(a.to_json()) == a
    assert a.camera_keys == ("cam",)
    assert a.fingerprint() != TransitionSpec(dict(a.observation_spec), 3).fingerprint()


@pytest.mark.timeout(10)
def test_spec_from_gymnasium_spaces():
    obs = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (19,), np.float32),
                           "front": gym.spaces.Box(0, 255, (128, 128, 3), np.uint8)})
    spec = TransitionSpec.from_spaces(obs, gym.spaces.Box(-1, 1, (7,), np.float32))
    assert spec.action_dim == 7
    assert spec.observation_spec["front"] == ((128, 128, 3), np.dtype(np.uint8))


@pytest.mark.timeout(10)
def test_a_lone_transition_is_not_a_batch(good):
    with pytest.raises(ValueError, match="not a batch"):
        SMALL_SPEC.validate_batch(good[0])
