"""An ensemble of identical networks with stacked (vmapped) parameters, and REDQ-style member
subsampling."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class Ensemble(nn.Module):
    net_cls: type[nn.Module]
    num: int = 2

    @nn.compact
    def __call__(self, *args):
        ensemble = nn.vmap(
            self.net_cls, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
            in_axes=None, out_axes=0, axis_size=self.num,
        )
        return ensemble()(*args)


def subsample(values: jnp.ndarray, rng: jax.Array, num: int | None) -> jnp.ndarray:
    """`num` members drawn without replacement along axis 0 (all of them when num is None)."""
    if num is None or num >= values.shape[0]:
        return values
    idx = jax.random.choice(rng, values.shape[0], (num,), replace=False)
    return values[idx]
