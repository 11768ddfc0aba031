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


def init_encoder(rng: jax.Array, obs: dict, cfg: EncoderConfig) -> tuple[dict, dict]:
    """(trainable params, frozen params) for an example observation (a batch of one is enough)."""
    params, frozen = {"pool": {}}, {}
    rngs = jax.random.split(rng, 2 * len(cfg.image_keys) + 2)
    if cfg.image_keys:
        example = obs[cfg.image_keys[0]]
        trunk = TRUNKS[cfg.trunk]()
        if cfg.frozen_trunk:
            frozen["trunk"] = trunk.init(rngs[-1], example)["params"]
        else:
            params["trunk"] = {
                k: trunk.init(rngs[2 * i], example)["params"] for i, k in enumerate(cfg.image_keys)
            }
        feats = jax.eval_shape(
            lambda p: trunk.apply({"params": p}, example),
            frozen.get("trunk") or params["trunk"][cfg.image_keys[0]],
        )
        dummy = jnp.zeros(feats.shape, feats.dtype)
        pool = PooledBottleneck(cfg.num_spatial_features, cfg.bottleneck_dim)
        params["pool"] = {
            k: pool.init(rngs[2 * i + 1], dummy)["params"] for i, k in enumerate(cfg.image_keys)
        }
        params["state"] = StateEmbedding(cfg.state_latent_dim).init(rngs[-2], obs["state"])[
            "params"
        ]
    return params, frozen


def encode(params: dict, frozen: dict, obs: dict, cfg: EncoderConfig) -> jnp.ndarray:
    """Features of a batch of observations: camera bottlenecks and the (embedded) state,
    concatenated."""
    parts = []
    for key in cfg.image_keys:
        if key + FEATURES_SUFFIX in obs:
            feats = obs[key + FEATURES_SUFFIX]
        elif cfg.frozen_trunk:
            feats = jax.lax.stop_gradient(trunk_features(frozen["trunk"], obs[key], cfg))
        else:
            feats = trunk_features(params["trunk"][key], obs[key], cfg)
        pool = PooledBottleneck(cfg.num_spatial_features, cfg.bottleneck_dim)
        parts.append(pool.apply({"params": params["pool"][key]}, feats.astype(jnp.float32)))
    state = obs["state"]
    if cfg.image_keys:
        state = StateEmbedding(cfg.state_latent_dim).apply({"params": params["state"]}, state)
    parts.append(state)
    return jnp.concatenate(parts, axis=-1)


def trunk_feature_fn(frozen: dict, cfg: EncoderConfig, batch_size: int = 64):
    """The feature-cache function the replay storage calls at insertion: camera frames -> float16
    trunk features, computed in fixed-size batches (one compiled shape) on the default device."""
    apply = jax.jit(lambda images: trunk_features(frozen["trunk"], images, cfg).astype(jnp.float16))

    def compute(obs: dict) -> dict:
        out = {}
        for key in cfg.image_keys:
            frames = obs[key]
            n = len(frames)
            padded = jnp.concatenate(
                [frames, jnp.zeros((-n % batch_size, *frames.shape[1:]), frames.dtype)]
            )
            feats = [apply(padded[i : i + batch_size]) for i in range(0, len(padded), batch_size)]
            out[key + FEATURES_SUFFIX] = jax.device_get(jnp.concatenate(feats)[:n])
        return out

    return compute


def trunk_feature_shape(cfg: EncoderConfig, image_shape: tuple[int, ...]) -> tuple[int, ...]:
    trunk = TRUNKS[cfg.trunk]()
    example = jax.ShapeDtypeStruct((1, *image_shape), jnp.uint8)
    params = jax.eval_shape(trunk.init, jax.random.PRNGKey(0), example)["params"]
    return jax.eval_shape(lambda p, x: trunk.apply({"params": p}, x), params, example).shape[1:]
