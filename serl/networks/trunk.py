"""The frozen trunk, a constant outside the trained agent: it is not in the optimiser's, the target
update's or the non-finite guard's tree and not in the published policy weights. The learner, every
actor and `serl eval` build it from their own `EncoderConfig` (the pretrained file, or random
weights drawn from `trunk_seed`), and the handshake compares its fingerprint, a hash of the weights,
so an actor whose trunk differs is refused instead of acting on features the learner never saw."""

from __future__ import annotations

import functools
import hashlib
import math
import os

import numpy as np

from serl.networks.config import EncoderConfig, check_trunk_weights

# what the handshake carries when there is no frozen trunk (state only, or a trained trunk)
NO_TRUNK = "none"


def has_frozen_trunk(cfg: EncoderConfig) -> bool:
    """Whether `cfg` runs a frozen trunk (one over cameras)."""
    return cfg.frozen_trunk and bool(cfg.image_keys)


def frozen_trunk(cfg: EncoderConfig) -> dict | None:
    """The frozen trunk's parameters (flax layout, read-only float32 numpy arrays on the host) or
    None when `cfg` has no frozen trunk. Built once per process and setting: loaded from
    `cfg.pretrained_path` (validated), or random from `cfg.trunk_seed` with the explicit
    `random_frozen_trunk`; neither is `MissingTrunkWeights`, naming `serl import-encoder`.
    Fine-tuning a trainable trunk from pretrained weights is not supported yet: a path with
    `frozen_trunk=False` raises ValueError."""
    return _built(cfg)[0]


def trunk_fingerprint(cfg: EncoderConfig) -> str:
    """`sha256:<16 hex digits>` of the frozen trunk's weights (paths, shapes and bytes), or
    `NO_TRUNK`: what the handshake compares."""
    return _built(cfg)[1]


def _built(cfg: EncoderConfig) -> tuple[dict | None, str]:
    check_trunk_weights(cfg)
    if cfg.pretrained_path and not cfg.frozen_trunk:
        raise ValueError(
            f"pretrained_path={cfg.pretrained_path!r} with frozen_trunk=False: fine-tuning a trunk "
            "from pretrained weights is not supported yet; set frozen_trunk True or drop "
            "pretrained_path")
    if not has_frozen_trunk(cfg):
        return None, NO_TRUNK
    if cfg.pretrained_path:
        # the file's identity, time and size in the key: a file rewritten or replaced is read again
        stat = os.stat(cfg.pretrained_path)
        return _loaded(str(cfg.pretrained_path), cfg.trunk,
                       (stat.st_ino, stat.st_mtime_ns, stat.st_size))
    return _random(cfg.trunk, cfg.trunk_seed)


@functools.lru_cache(maxsize=4)
def _loaded(path: str, trunk: str, version: tuple[int, int, int]) -> tuple[dict, str]:
    """`version` (inode, mtime, size) is only part of the cache key."""
    from serl.networks.trunk_weights import load_trunk_params

    return _sealed(load_trunk_params(path, trunk))


@functools.lru_cache(maxsize=4)
def _random(trunk: str, seed: int) -> tuple[dict, str]:
    """Kernels uniform with LeCun's variance (1 / fan-in, flax's default), norm scales 1, biases
    0. Drawn with numpy's PCG64 and exact float arithmetic, so every machine (a GPU learner, a CPU
    actor) builds the same bits; an XLA initialiser may differ in the last bit between backends."""
    from serl.networks.trunk_weights import expected_trunk_shapes, unflatten

    rng = np.random.Generator(np.random.PCG64(seed))
    flat = {}
    for path, shape in expected_trunk_shapes(trunk).items():
        if path[-1] == "kernel":
            limit = np.float32(math.sqrt(3.0 / math.prod(shape[:-1])))
            unit = rng.random(shape, dtype=np.float32)
            flat[path] = (np.float32(2.0) * unit - np.float32(1.0)) * limit
        elif path[-1] == "scale":
            flat[path] = np.ones(shape, np.float32)
        else:
            flat[path] = np.zeros(shape, np.float32)
    return _sealed(unflatten(flat))


def _sealed(params: dict) -> tuple[dict, str]:
    """(params with read-only float32 leaves, their fingerprint): a cached trunk is shared, never
    changed."""
    from serl.networks.trunk_weights import flatten, join_path, unflatten

    flat = {path: np.ascontiguousarray(leaf, np.float32) for path, leaf in flatten(params).items()}
    digest = hashlib.sha256()
    for path, array in sorted(flat.items()):
        array.setflags(write=False)
        digest.update(f"{join_path(path)}:{array.shape}".encode())
        digest.update(array.astype("<f4", copy=False).tobytes())
    return unflatten(flat), "sha256:" + digest.hexdigest()[:16]
