"""The policy-parameter template: built without initialising an agent, it is the exact tree a real
agent publishes, so weights encoded on the learner side decode against it."""

import jax
import numpy as np
import pytest
from gymnasium import spaces

from serl.agents.config import SACConfig
from serl.agents.factory import example_observation, make_agent, policy_params_template
from serl.networks.config import EncoderConfig
from serl.transport.codec import BadMessage
from serl.transport.params_codec import ParamsDecoder, encode_params

STATE = spaces.Dict({"state": spaces.Box(-1, 1, (5,), np.float32)})
PIXELS = spaces.Dict({"state": spaces.Box(-1, 1, (5,), np.float32),
                      "front": spaces.Box(0, 255, (16, 16, 3), np.uint8)})


@pytest.mark.timeout(120)
@pytest.mark.parametrize("cfg, space", [
    (SACConfig(hidden_dims=(8,), grasp_critic=True), STATE),
    (SACConfig(hidden_dims=(8,), encoder=EncoderConfig(image_keys=("front",), bottleneck_dim=8)),
     PIXELS),
])
def test_template_decodes_what_a_real_agent_publishes(cfg, space):
    template = policy_params_template(cfg, space, 7, seed=0)
    agent = make_agent(cfg, example_observation(space), 7, seed=3)
    published = jax.device_get(agent.policy_params())
    decoded = ParamsDecoder(template).decode(encode_params(published))
    flat, tree = jax.tree_util.tree_flatten(decoded)
    assert tree == jax.tree_util.tree_structure(published)
    for got, want in zip(flat, jax.tree.leaves(published), strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert all(not np.any(leaf) for leaf in jax.tree.leaves(template))
    # a tree of another width is refused against this template
    other = make_agent(SACConfig(hidden_dims=(4,), grasp_critic=cfg.grasp_critic,
                                 encoder=cfg.encoder), example_observation(space), 7, seed=0)
    with pytest.raises(BadMessage):
        ParamsDecoder(template).decode(encode_params(jax.device_get(other.policy_params())))
