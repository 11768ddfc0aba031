"""Random-crop augmentation, batched: pad each image by `pad` pixels (edge values) and crop back to
its size at a random offset drawn per image."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def random_crop(images: jnp.ndarray, rng: jax.Array, pad: int = 4) -> jnp.ndarray:
    """images: (..., H, W, C), any leading batch dims; one offset per image."""
    *batch, h, w, c = images.shape
    flat = images.reshape((-1, h, w, c))
    padded = jnp.pad(flat, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(rng, (flat.shape[0], 2), 0, 2 * pad + 1)

    def crop(img, off):
        return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c))

    return jax.vmap(crop)(padded, offsets).reshape(images.shape)
