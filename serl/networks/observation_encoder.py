"""Observation -> feature vector, shared by actor and critics: one trunk + pooled bottleneck per
camera and the state. Written as pure functions over an explicit parameter dict, so a frozen trunk's
parameters can live outside the optimizer and the same code runs on raw frames (actor) or on cached
trunk features (learner)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from serl.networks.config import FEATURES_SUFFIX, EncoderConfig
from serl.networks.encoders import TRUNKS, PooledBottleneck


class StateEmbedding(nn.Module):
    dim: int

    @nn.compact
    def __call__(self, state):
        return nn.tanh(nn.LayerNorm()(nn.Dense(self.dim)(state)))


def trunk_features(trunk_params, images: jnp.ndarray, cfg: EncoderConfig) -> jnp.ndarray:
    return TRUNKS[cfg.trunk]().apply({"params": trunk_params}, images)


def init_encoder(rng: jax.Array, obs: dict, cfg: EncoderConfig) -> dict:
    """The trainable parameters for an example observation (a batch of one is enough). A frozen
    trunk is not among them: it is a constant (`serl.networks.trunk.frozen_trunk`), only its
    output shape is needed here."""
    params = {"pool": {}}
    rngs = jax.random.split(rng, 2 * len(cfg.image_keys) + 2)
    if cfg.image_keys:
        example = obs[cfg.image_keys[0]]
        trunk = TRUNKS[cfg.trunk]()
        if cfg.frozen_trunk:
            abstract = jax.eval_shape(trunk.init, rngs[-1], example)["params"]
        else:
            params["trunk"] = {
                k: trunk.init(rngs[2 * i], example)["params"] for i, k in enumerate(cfg.image_keys)
            }
            abstract = params["trunk"][cfg.image_keys[0]]
        feats = jax.eval_shape(lambda p: trunk.apply({"params": p}, example), abstract)
        dummy = jnp.zeros(feats.shape, feats.dtype)
        pool = PooledBottleneck(cfg.num_spatial_features, cfg.bottleneck_dim)
        params["pool"] = {
            k: pool.init(rngs[2 * i + 1], dummy)["params"] for i, k in enumerate(cfg.image_keys)
        }
        params["state"] = StateEmbedding(cfg.state_latent_dim).init(rngs[-2], obs["state"])[
            "params"
        ]
    return params


def camera_features(trunk, obs: dict, key: str, cfg: EncoderConfig) -> jnp.ndarray:
    """One camera's cached trunk features, else the frozen trunk's output on its frames."""
    if key + FEATURES_SUFFIX in obs:
        return obs[key + FEATURES_SUFFIX]
    if trunk is None:
        raise ValueError(
            f"camera {key!r}: the frozen trunk is not part of the agent's parameters; pass the one "
            "serl.networks.trunk.frozen_trunk builds from the config (or cached features)")
    return jax.lax.stop_gradient(trunk_features(trunk, obs[key], cfg))


def with_trunk_features(obs: dict, trunk, cfg: EncoderConfig) -> dict:
    """`obs` with each camera's frames replaced by the frozen trunk's features (cached ones are
    kept): the trunk then runs once per frame, whichever networks read the features. Unchanged
    without a frozen trunk."""
    if not (cfg.frozen_trunk and cfg.image_keys):
        return obs
    out = {k: v for k, v in obs.items() if k not in cfg.image_keys}
    for key in cfg.image_keys:
        out[key + FEATURES_SUFFIX] = camera_features(trunk, obs, key, cfg)
    return out


def encode(params: dict, trunk, obs: dict, cfg: EncoderConfig) -> jnp.ndarray:
    """Features of a batch of observations: camera bottlenecks and the (embedded) state,
    concatenated. `trunk`: the frozen trunk's parameters (None without one, or when `obs`
    carries its features)."""
    parts = []
    for key in cfg.image_keys:
        if cfg.frozen_trunk:
            feats = camera_features(trunk, obs, key, cfg)
        elif key + FEATURES_SUFFIX in obs:
            feats = obs[key + FEATURES_SUFFIX]
        else:
            feats = trunk_features(params["trunk"][key], obs[key], cfg)
        pool = PooledBottleneck(cfg.num_spatial_features, cfg.bottleneck_dim)
        parts.append(pool.apply({"params": params["pool"][key]}, feats.astype(jnp.float32)))
    state = obs["state"]
    if cfg.image_keys:
        state = StateEmbedding(cfg.state_latent_dim).apply({"params": params["state"]}, state)
    parts.append(state)
    return jnp.concatenate(parts, axis=-1)


def trunk_feature_fn(trunk, cfg: EncoderConfig, batch_size: int = 64):
    """The feature-cache function the replay storage calls at insertion: camera frames -> float16
    trunk features on the default device. `trunk`: the frozen trunk's parameters
    (`serl.networks.trunk.frozen_trunk`). Frames go through in chunks of `batch_size`, the last one
    padded to the next power of two: a few compiled shapes, and a batch of one or two frames (what
    a learner keeping up with its actors takes in) costs one or two frames, not `batch_size`."""
    trunk = jax.device_put(trunk)
    apply = jax.jit(lambda p, images: trunk_features(p, images, cfg).astype(jnp.float16))

    def compute(obs: dict) -> dict:
        out = {}
        for key in cfg.image_keys:
            frames = jnp.asarray(obs[key])
            feats = []
            for i in range(0, len(frames), batch_size):
                chunk = frames[i : i + batch_size]
                size = min(batch_size, 1 << (len(chunk) - 1).bit_length())
                padding = jnp.zeros((size - len(chunk), *frames.shape[1:]), frames.dtype)
                feats.append(apply(trunk, jnp.concatenate([chunk, padding]))[: len(chunk)])
            if not feats:
                feats = [jnp.zeros((0, *trunk_feature_shape(cfg, frames.shape[1:])), jnp.float16)]
            out[key + FEATURES_SUFFIX] = jax.device_get(jnp.concatenate(feats))
        return out

    return compute


def trunk_feature_shape(cfg: EncoderConfig, image_shape: tuple[int, ...]) -> tuple[int, ...]:
    trunk = TRUNKS[cfg.trunk]()
    example = jax.ShapeDtypeStruct((1, *image_shape), jnp.uint8)
    params = jax.eval_shape(trunk.init, jax.random.PRNGKey(0), example)["params"]
    return jax.eval_shape(lambda p, x: trunk.apply({"params": p}, x), params, example).shape[1:]
