"""The frozen trunk is outside the trained agent: not published, not guarded or copied by the
update, and the actor's (published weights + its own trunk) acts as the learner's agent would.
`update` donates the old agent's buffers; augmentation the pipeline cannot apply is refused."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium import spaces

from serl.agents import sac
from serl.agents.common import augment_batch
from serl.agents.config import SACConfig
from serl.agents.factory import make_agent, policy_functions, policy_params_template
from serl.networks.config import EncoderConfig
from serl.networks.observation_encoder import with_trunk_features
from serl.networks.trunk import frozen_trunk, trunk_fingerprint
from serl.networks.trunk_weights import expected_trunk_shapes
from serl.transport.params_codec import ParamsDecoder, encode_params

ENCODER = EncoderConfig(image_keys=("front",), trunk="small", frozen_trunk=True,
                        random_frozen_trunk=True, bottleneck_dim=8, state_latent_dim=8)
CFG = SACConfig(encoder=ENCODER, hidden_dims=(16,), batch_size=8, augment_pad=2,
                critic_actor_ratio=1)
SPACE = spaces.Dict({"state": spaces.Box(-1, 1, (5,), np.float32),
                     "front": spaces.Box(0, 255, (16, 16, 3), np.uint8)})


def observations(rng, lead):
    return {"state": rng.normal(size=(*lead, 5)).astype(np.float32),
            "front": rng.integers(0, 256, (*lead, 16, 16, 3), dtype=np.uint8)}


def batch(rng, ratio=1, size=8):
    return {"observations": observations(rng, (ratio, size)),
            "next_observations": observations(rng, (ratio, size)),
            "actions": rng.uniform(-1, 1, (ratio, size, 2)).astype(np.float32),
            "rewards": rng.normal(size=(ratio, size)).astype(np.float32),
            "masks": np.ones((ratio, size), np.float32)}


def host_copy(tree):
    return jax.tree.map(lambda x: np.array(x, copy=True), tree)


def paths(tree) -> list[str]:
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]


@pytest.mark.timeout(60)
def test_the_agent_publishes_and_guards_no_trunk_and_donates_its_buffers():
    rng = np.random.default_rng(0)
    agent = make_agent(CFG, {k: np.zeros(s.shape, s.dtype) for k, s in SPACE.items()}, 2, 0)
    assert not [p for p in paths(agent) if "trunk" in p]  # nothing to guard, copy or checkpoint
    assert set(agent.policy_params()) == {"encoder", "actor"}
    assert "trunk" not in agent.policy_params()["encoder"]
    trunk = jax.device_put(frozen_trunk(ENCODER))
    before = host_copy(trunk)
    poisoned = batch(rng)
    poisoned["rewards"][0, 0] = np.nan
    old = agent
    agent, info = agent.update(poisoned, trunk)
    assert float(info["update_ok"]) == 0.0 and int(agent.skipped_updates) == 1
    assert old.rng.is_deleted() and old.critic.params["encoder"]["state"]["Dense_0"][
        "kernel"].is_deleted()  # donated
    agent, info = agent.update(batch(rng), trunk)
    assert float(info["update_ok"]) == 1.0
    # the trunk is an argument of the update, never donated nor written
    assert not any(leaf.is_deleted() for leaf in jax.tree.leaves(trunk))
    for a, b in zip(jax.tree.leaves(trunk), jax.tree.leaves(before), strict=True):
        np.testing.assert_array_equal(np.asarray(a), b)


@pytest.mark.timeout(60)
def test_published_weights_and_the_local_trunk_act_as_the_learner():
    rng = np.random.default_rng(1)
    agent = make_agent(CFG, {k: np.zeros(s.shape, s.dtype) for k, s in SPACE.items()}, 2, 0)
    learner_trunk = jax.device_put(frozen_trunk(ENCODER))
    agent, _ = agent.update(batch(rng), learner_trunk)
    # over the wire, checked against the actor's template
    wire = encode_params(jax.device_get(agent.policy_params()))
    published = ParamsDecoder(policy_params_template(CFG, SPACE, 2)).decode(wire)
    sample, evaluate = policy_functions(CFG, 2)  # builds its own trunk from the config
    obs = observations(rng, (4,))
    feats = agent.features(agent.critic.params, with_trunk_features(obs, learner_trunk, ENCODER))
    mean, _ = sac.actor_module(CFG, 2).apply({"params": agent.actor.params}, feats)
    np.testing.assert_allclose(np.asarray(evaluate(published, obs)), np.tanh(mean), atol=1e-6)
    key = jax.random.PRNGKey(3)
    mine = sac.sample_actions(agent.policy_params(), obs, key, cfg=CFG, action_dim=2,
                              trunk=learner_trunk)
    np.testing.assert_allclose(np.asarray(sample(published, obs, key)), mine, atol=1e-6)
    with pytest.raises(ValueError, match="frozen trunk is not part"):
        sac.eval_actions(published, obs, cfg=CFG, action_dim=2)  # no trunk: refused, not zeros


@pytest.mark.timeout(60)
def test_a_resnet10_policy_publishes_a_third_of_the_bytes():
    enc = EncoderConfig(image_keys=("front", "wrist"), trunk="resnet10", frozen_trunk=True,
                        random_frozen_trunk=True)
    frames = spaces.Box(0, 255, (128, 128, 3), np.uint8)
    space = spaces.Dict({"state": spaces.Box(-1, 1, (19,), np.float32), "front": frames,
                         "wrist": frames})
    template = policy_params_template(SACConfig(encoder=enc, grasp_critic=True), space, 7)
    published = sum(leaf.nbytes for leaf in jax.tree.leaves(template))
    trunk = 4 * sum(math.prod(shape) for shape in expected_trunk_shapes("resnet10").values())
    # 10.65 MB instead of 30.3 MB with the 19.6 MB trunk (4.9 M parameters) inside
    assert not [p for p in paths(template) if "trunk" in p]
    assert trunk > 19e6 and published < 11e6 and published < 0.36 * (published + trunk)


@pytest.mark.timeout(30)
def test_the_random_trunk_is_the_same_from_its_seed_and_differs_across_seeds():
    again = frozen_trunk(dataclasses.replace(ENCODER))
    assert again is frozen_trunk(ENCODER)  # built once per process
    other = dataclasses.replace(ENCODER, trunk_seed=1)
    assert trunk_fingerprint(other) != trunk_fingerprint(ENCODER)
    kernel = frozen_trunk(ENCODER)["Conv_0"]["kernel"]
    assert not kernel.flags.writeable and abs(float(kernel.std()) - 1 / math.sqrt(27)) < 0.02
    assert trunk_fingerprint(EncoderConfig()) == "none"


@pytest.mark.timeout(30)
def test_augmentation_the_cache_would_skip_is_a_config_error():
    cached = EncoderConfig(image_keys=("front", "wrist"), trunk="resnet10", frozen_trunk=True,
                           random_frozen_trunk=True, feature_cache=True)
    with pytest.raises(ValueError, match=r"augment_pad=4 with agent.encoder.feature_cache=True") \
            as refused:
        SACConfig(encoder=cached)
    assert "--agent.augment-pad 0" in str(refused.value)
    assert "--agent.encoder.no-feature-cache" in str(refused.value)
    SACConfig(encoder=cached, augment_pad=0)  # no augmentation, said so
    SACConfig(encoder=dataclasses.replace(cached, feature_cache=False))  # crops the frames
    with pytest.raises(ValueError, match="augment_pad -1"):
        SACConfig(augment_pad=-1)
    # and the update itself never skips a crop silently
    features = {"state": jnp.zeros((1, 2, 5)), "front_features": jnp.zeros((1, 2, 4, 4, 8))}
    with pytest.raises(ValueError, match="cached trunk features"):
        augment_batch({"observations": features, "next_observations": features}, ("front",),
                      jax.random.PRNGKey(0), 4)
