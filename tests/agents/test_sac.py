"""The SAC/RLPD agent: it learns, its math is right, and its update is guarded and shardable."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from serl.agents.config import SACConfig
from serl.agents.sac import SACAgent, eval_actions, sample_actions
from serl.networks.config import EncoderConfig
from serl.networks.policy import tanh_gaussian_log_prob

sys.path.insert(0, str(Path(__file__).parent))
from pointmass import PointMassReach  # noqa: E402

STATE_CFG = SACConfig(hidden_dims=(64, 64), batch_size=64, augment_pad=0, discount=0.9)
PIXEL_CFG = SACConfig(encoder=EncoderConfig(image_keys=("pixels",), bottleneck_dim=32,
                                            state_latent_dim=16),
                      hidden_dims=(64, 64), batch_size=64, augment_pad=0, discount=0.9)


def evaluate(params, cfg, pixels, episodes=20, seed=0) -> float:
    env = PointMassReach(pixels=pixels, seed=10_000 + seed)
    wins = 0
    for _ in range(episodes):
        obs, done = env.reset(), False
        while not done:
            action = np.asarray(eval_actions(params, obs, cfg=cfg, action_dim=2))
            obs, _, terminated, truncated = env.step(action)
            done = terminated or truncated
        wins += terminated
    return wins / episodes


def train_until(cfg, pixels, seed, max_updates, random_steps=300, eval_every=250):
    """Online SAC on the point mass; returns (best success, updates used), stopping once it
    reaches 90%."""
    env = PointMassReach(pixels=pixels, seed=seed)
    obs = env.reset()
    agent = SACAgent.create(jax.random.PRNGKey(seed), obs, 2, cfg)
    size = random_steps + max_updates
    buf = {f: {k: np.zeros((size, *v.shape), v.dtype) for k, v in obs.items()}
           for f in ("observations", "next_observations")}
    buf.update(actions=np.zeros((size, 2), np.float32), rewards=np.zeros(size, np.float32),
               masks=np.zeros(size, np.float32))
    rng, key, best = np.random.default_rng(seed), jax.random.PRNGKey(seed + 1), 0.0
    for n in range(size):
        if n < random_steps:
            action = rng.uniform(-1, 1, 2)
        else:
            key, sub = jax.random.split(key)
            action = np.asarray(sample_actions(agent.policy_params(), obs, sub, cfg=cfg,
                                               action_dim=2))
        next_obs, reward, terminated, truncated = env.step(action)
        for field, o in (("observations", obs), ("next_observations", next_obs)):
            for k, v in o.items():
                buf[field][k][n] = v
        buf["actions"][n], buf["rewards"][n], buf["masks"][n] = action, reward, 1.0 - terminated
        obs = env.reset() if terminated or truncated else next_obs
        if n >= random_steps:
            idx = rng.integers(0, n + 1, (cfg.critic_actor_ratio, cfg.batch_size))
            agent, _ = agent.update(jax.tree.map(lambda x, i=idx: x[i], buf))
            updates = n + 1 - random_steps
            if updates % eval_every == 0:
                best = max(best, evaluate(agent.policy_params(), cfg, pixels, seed=seed))
                if best >= 0.9:
                    return best, updates
    return best, max_updates


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [0, 1])
def test_learns_point_mass_reach_from_state(seed):
    success, updates = train_until(STATE_CFG, pixels=False, seed=seed, max_updates=4000)
    assert success >= 0.9, f"success {success} after {updates} updates"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("seed", [0, 1])
def test_learns_point_mass_reach_from_pixels(seed):
    # The goal (left or right) is only in the image: success needs the encoder to learn to read it.
    success, updates = train_until(PIXEL_CFG, pixels=True, seed=seed, max_updates=1500)
    assert success >= 0.9, f"success {success} after {updates} updates"


@pytest.mark.timeout(30)
def test_tanh_gaussian_log_prob_matches_reference():
    rng = np.random.default_rng(0)
    mean, log_std = rng.normal(size=(1000, 3)), rng.uniform(-2, 0.5, (1000, 3))
    u = mean + np.exp(log_std) * rng.normal(size=(1000, 3)) * 2.0
    ours = np.asarray(tanh_gaussian_log_prob(jnp.asarray(u), jnp.asarray(mean),
                                             jnp.asarray(log_std)))
    # Change of variables in float64: log N(u) - log(1 - tanh(u)^2), summed over dims.
    ref = (stats.norm.logpdf(u, mean, np.exp(log_std)) - np.log1p(-(np.tanh(u) ** 2))).sum(-1)
    finite = np.isfinite(ref)
    np.testing.assert_allclose(ours[finite], ref[finite], rtol=1e-4, atol=1e-3)


def _batch(obs, ratio, size, reward=0.0):
    one = {"observations": obs, "next_observations": obs, "actions": np.zeros(2, np.float32),
           "rewards": np.float32(reward), "masks": np.float32(1.0)}
    return jax.tree.map(lambda x: np.broadcast_to(x, (ratio, size, *np.shape(x))).copy(), one)


@pytest.mark.timeout(60)
def test_non_finite_update_leaves_every_leaf_unchanged():
    obs = PointMassReach().reset()
    agent = SACAgent.create(jax.random.PRNGKey(0), obs, 2, STATE_CFG)
    # `update` donates the agent's buffers: compare against a host copy
    agent = jax.tree.map(lambda x: np.array(x, copy=True), agent)
    poisoned = _batch(obs, 2, 64)
    poisoned["rewards"][1, 3] = np.nan  # in the full (critic + actor) minibatch
    after, info = jax.device_put(agent).update(poisoned)
    assert float(info["update_ok"]) == 0.0 and int(after.skipped_updates) == 1
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(agent), jax.tree.leaves(after),
                            strict=True):
        if "skipped_updates" not in jax.tree_util.keystr(path):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b),
                                          err_msg=jax.tree_util.keystr(path))
    poisoned = _batch(obs, 2, 64)
    poisoned["observations"]["state"][0, 0, 0] = np.inf  # in a critic-only minibatch
    after, info = after.update(poisoned)
    assert int(after.skipped_updates) == 2
    finite, info = after.update(_batch(obs, 2, 64, reward=1.0))
    assert float(info["update_ok"]) == 1.0 and int(finite.skipped_updates) == 2
    changed = [not np.array_equal(a, b)
               for a, b in zip(jax.tree.leaves(agent.critic.params),
                               jax.tree.leaves(finite.critic.params), strict=True)]
    assert all(changed)
    assert not np.array_equal(np.asarray(agent.temperature.params["log_temp"]),
                              np.asarray(finite.temperature.params["log_temp"]))


SHARDING_SCRIPT = """
import json, jax, numpy as np
from serl.agents.config import SACConfig
from serl.agents.sac import SACAgent
from serl.agents.sharding import make_mesh, replicate, shard_batch
cfg = SACConfig(hidden_dims=(32, 32), batch_size=8, augment_pad=0)
rng = np.random.default_rng(0)
obs = {"state": np.zeros(4, np.float32)}
batch = {"observations": {"state": rng.normal(size=(2, 8, 4)).astype(np.float32)},
         "next_observations": {"state": rng.normal(size=(2, 8, 4)).astype(np.float32)},
         "actions": rng.uniform(-1, 1, (2, 8, 2)).astype(np.float32),
         "rewards": rng.normal(size=(2, 8)).astype(np.float32),
         "masks": np.ones((2, 8), np.float32)}
agent = SACAgent.create(jax.random.PRNGKey(0), obs, 2, cfg)
host = jax.tree.map(lambda x: np.array(x, copy=True), agent)  # `update` donates the agent
single, _ = agent.update(batch)
mesh = make_mesh()
sharded_batch = shard_batch(batch, mesh)
shard_shapes = sorted({tuple(s.data.shape) for s in sharded_batch["rewards"].addressable_shards})
sharded, _ = replicate(host, mesh).update(sharded_batch)
diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
           for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(sharded))
           if np.asarray(a).dtype.kind == "f")
print(json.dumps({"devices": len(jax.devices()), "shard_shapes": shard_shapes, "max_diff": diff}))
"""


@pytest.mark.timeout(120)
def test_sharded_update_splits_the_batch_and_matches_one_device():
    env = {**__import__("os").environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", SHARDING_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=110)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2
    assert result["shard_shapes"] == [[2, 4]]  # each device holds half of the batch of 8
    assert result["max_diff"] <= 1e-5


@pytest.mark.timeout(90)
def test_unrolled_and_scanned_ratio_give_the_same_update():
    import dataclasses

    rng = np.random.default_rng(0)
    obs = {"state": np.zeros(4, np.float32)}
    batch = {"observations": {"state": rng.normal(size=(3, 16, 4)).astype(np.float32)},
             "next_observations": {"state": rng.normal(size=(3, 16, 4)).astype(np.float32)},
             "actions": rng.uniform(-1, 1, (3, 16, 2)).astype(np.float32),
             "rewards": rng.normal(size=(3, 16)).astype(np.float32),
             "masks": np.ones((3, 16), np.float32)}
    results = []
    for scan in (False, True):
        cfg = dataclasses.replace(STATE_CFG, critic_actor_ratio=3, batch_size=16, scan_ratio=scan)
        agent, info = SACAgent.create(jax.random.PRNGKey(0), obs, 2, cfg).update(batch)
        results.append((agent, info))
    for a, b in zip(jax.tree.leaves(results[0][0]), jax.tree.leaves(results[1][0]), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    assert float(results[0][1]["critic_only/critic_loss"]) == pytest.approx(
        float(results[1][1]["critic_only/critic_loss"]), rel=1e-5)
