"""Data-parallel updates over all local devices: the batch is split over a mesh axis, parameters are
replicated, and XLA inserts the gradient all-reduce, so a multi-GPU learner runs the same `update`
with no code change."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

BATCH_AXIS = "batch"


def make_mesh(devices=None) -> Mesh:
    return Mesh(np.array(devices if devices is not None else jax.local_devices()), (BATCH_AXIS,))


def shard_batch(batch, mesh: Mesh):
    """Place a (ratio, batch, ...) batch with its batch axis split over the mesh."""
    sharding = NamedSharding(mesh, PartitionSpec(None, BATCH_AXIS))
    n = mesh.devices.size
    sizes = {np.shape(x)[1] for x in jax.tree.leaves(batch)}
    if any(s % n for s in sizes):
        raise ValueError(f"batch size {sizes} must be divisible by the {n} devices of the mesh")
    return jax.device_put(batch, sharding)


def replicate(tree, mesh: Mesh):
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
