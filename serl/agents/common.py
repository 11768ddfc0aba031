"""Pieces every agent's update shares: augmentation of a batch, the frozen trunk's pass over it,
soft target updates, and the scan over the critic-to-actor ratio wrapped in the non-finite guard
(which sees only the trained tree: the frozen trunk is an argument of the update, not part of the
agent)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from serl.networks.augment import random_crop
from serl.networks.config import FEATURES_SUFFIX, EncoderConfig
from serl.networks.observation_encoder import with_trunk_features

OBSERVATION_FIELDS = ("observations", "next_observations")


def augment_batch(batch: dict, image_keys: tuple[str, ...], rng: jax.Array, pad: int) -> dict:
    """Random-crop the raw camera frames of observations and next_observations. A camera that comes
    as cached features cannot be cropped: ValueError rather than a silent no-op (`SACConfig`
    refuses that configuration before it gets here)."""
    if pad <= 0:
        return batch
    out = dict(batch)
    for field in OBSERVATION_FIELDS:
        obs = dict(batch[field])
        for i, key in enumerate(image_keys):
            if key in obs:
                obs[key] = random_crop(
                    obs[key], jax.random.fold_in(rng, 2 * i + (field == "observations")), pad
                )
            elif key + FEATURES_SUFFIX in obs:
                raise ValueError(f"augment_pad={pad} but camera {key!r} comes as cached trunk "
                                 "features, which a pixel crop cannot shift")
        out[field] = obs
    return out


def bind_trunk(batch: dict, trunk, cfg: EncoderConfig) -> dict:
    """The batch with the frozen trunk's features in place of its (augmented) frames, computed
    once per frame for every network of the step (`with_trunk_features`)."""
    out = dict(batch)
    for field in OBSERVATION_FIELDS:
        out[field] = with_trunk_features(batch[field], trunk, cfg)
    return out


def soft_update(target, online, tau: float):
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def global_norm(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def all_finite(tree) -> jax.Array:
    leaves = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def guarded_ratio_update(agent, batch: dict, step: Callable, scan: bool = False) -> tuple:
    """Run `step(agent, minibatch, full=False)` on all but the last minibatch (leading axis of every
    leaf), then `step(..., full=True)` on the last. If any loss or any resulting parameter,
    optimizer moment, target or temperature is NaN or infinite, the whole agent is left exactly as
    it was and `skipped_updates` counts it. `agent` is the trained tree only (no frozen trunk), so
    that is all the guard scans and copies.

    The critic-only minibatches are unrolled by default: XLA's CPU backend keeps the gradient of a
    convolution kernel in a naive layout inside a `lax.scan` body (measured ~15x slower for an
    end-to-end trained encoder). `scan=True` traces the body once, which compiles faster for large
    ratios.
    """
    ratio = jax.tree.leaves(batch)[0].shape[0]
    minibatch = lambda i: jax.tree.map(lambda x: x[i], batch)  # noqa: E731
    if scan:
        head = jax.tree.map(lambda x: x[:-1], batch)
        new, critic_infos = jax.lax.scan(lambda a, mb: step(a, mb, False), agent, head)
        critic_infos = {k: v.mean() for k, v in critic_infos.items()}
    else:
        new, infos = agent, []
        for i in range(ratio - 1):
            new, info = step(new, minibatch(i), False)
            infos.append(info)
        critic_infos = (
            {k: jnp.mean(jnp.stack([d[k] for d in infos])) for k in infos[0]} if infos else {}
        )
    new, info = step(new, minibatch(ratio - 1), True)
    info = {**info, **{f"critic_only/{k}": v for k, v in critic_infos.items()}}
    ok = all_finite(new) & all_finite(info)
    kept = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, agent)
    kept = kept.replace(skipped_updates=agent.skipped_updates + (~ok).astype(jnp.int32))
    return kept, {**info, "update_ok": ok.astype(jnp.float32)}
