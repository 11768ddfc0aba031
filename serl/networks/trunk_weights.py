"""Pretrained trunk weights in our on-disk format: flax msgpack, validated against the trunk on
every load. Run time only ever reads this format, which holds arrays and nothing executable
(`serl.networks.pretrained` converts the commonly shared pickle into it, once)."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from serl.durable import write_bytes

Path_ = tuple[str, ...]


def join_path(path: Path_) -> str:
    return "/".join(str(p) for p in path)


@functools.cache
def _expected(trunk: str, image_size: int) -> tuple[tuple[Path_, tuple[int, ...]], ...]:
    import jax
    import jax.numpy as jnp
    from flax.traverse_util import flatten_dict

    from serl.networks.encoders import TRUNKS

    if trunk not in TRUNKS:
        raise ValueError(f"unknown trunk {trunk!r} (known: {', '.join(TRUNKS)})")
    module = TRUNKS[trunk]()
    images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.uint8)
    variables = jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x), images)
    return tuple(
        (path, tuple(leaf.shape)) for path, leaf in flatten_dict(variables["params"]).items()
    )


def expected_trunk_shapes(
    trunk: str = "resnet10", image_size: int = 128
) -> dict[Path_, tuple[int, ...]]:
    """Every parameter of the trunk, path (e.g. `("ResNetBlock_2", "Conv_1", "kernel")`) -> shape,
    in sorted path order (the order in which the first mismatch is found). Computed abstractly
    (`jax.eval_shape`), so nothing is allocated."""
    return dict(_expected(trunk, image_size))


def flatten(tree: Any, prefix: Path_ = ()) -> dict[Path_, Any]:
    """Nested mappings -> {path: leaf}. Any mapping counts (dict, flax FrozenDict); an empty one is
    kept as a leaf so that it shows up as unexpected rather than vanishing."""
    if isinstance(tree, Mapping) and tree:
        out: dict[Path_, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, (*prefix, key)))
        return out
    return {prefix: tree}


def unflatten(flat: dict[Path_, Any]) -> dict:
    out: dict = {}
    for path, leaf in flat.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = leaf
    return out


def _check(
    flat: dict[Path_, Any], trunk: str
) -> tuple[dict[Path_, np.ndarray], list[tuple[Path_, str]]]:
    """(float32 arrays in module order, mismatches as (path, message)): the trunk's parameters in
    order, then any the trunk does not have."""
    expected = expected_trunk_shapes(trunk)
    arrays, mismatches = {}, []
    for path, shape in expected.items():
        if path not in flat:
            mismatches.append((path, f"missing (expected shape {shape})"))
            continue
        leaf = flat[path]
        if not isinstance(leaf, np.ndarray | np.generic) and not hasattr(leaf, "__array__"):
            mismatches.append(
                (path, f"expected an array of shape {shape}, got {type(leaf).__name__}")
            )
            continue
        array = np.asarray(leaf)
        if not np.issubdtype(array.dtype, np.floating) and array.dtype.name != "bfloat16":
            mismatches.append((path, f"expected a float array, got dtype {array.dtype}"))
        elif array.shape != shape:
            mismatches.append((path, f"expected {shape}, got {array.shape}"))
        else:
            # a copy for every dtype, so callers may keep or mutate it
            arrays[path] = array.astype(np.float32)
    mismatches += [
        (path, f"unexpected parameter (not part of the {trunk} trunk)")
        for path in flat
        if path not in expected
    ]
    return arrays, mismatches


def validated(
    flat: dict[Path_, Any], trunk: str, where: str, source_names: dict[Path_, Path_] | None = None
) -> dict:
    arrays, mismatches = _check(flat, trunk)
    if mismatches:
        path, message = mismatches[0]
        origin = (source_names or {}).get(path)
        named = f" (named {join_path(origin)} in the source)" if origin and origin != path else ""
        more = f"; {len(mismatches) - 1} more mismatch(es)" if len(mismatches) > 1 else ""
        raise ValueError(
            f"{join_path(path)}: {message}{named} [{where} is not valid {trunk} trunk "
            f"weights{more}]"
        )
    return unflatten(arrays)


def save_trunk_params(path: str | os.PathLike, params: Mapping) -> None:
    """Write trunk parameters as flax msgpack, atomically and durably (`serl.durable.write_bytes`:
    readers see the old file or the complete new one, never a partial one). Does not validate; the
    converter validates before saving and `load_trunk_params` validates on every load."""
    from flax import serialization

    flat = {k: np.asarray(v) for k, v in flatten(params).items()}
    write_bytes(path, serialization.to_bytes(unflatten(flat)))


def load_trunk_params(path: str | os.PathLike, trunk: str = "resnet10") -> dict:
    """Trunk parameters saved by `save_trunk_params` (or `serl import-encoder`), as float32 numpy
    arrays in flax's nested-dict layout (`{"conv_init": {"kernel": ...}, ...}`). Raises ValueError
    naming the file if it is not msgpack, or naming the first parameter that is missing, unexpected,
    of the wrong shape or not a float."""
    from flax import serialization

    data = Path(path).read_bytes()
    try:
        tree = serialization.msgpack_restore(data)
    except Exception as e:  # msgpack and flax raise several types for truncated or foreign bytes
        raise ValueError(
            f"{path}: not a valid msgpack weights file ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(tree, Mapping):
        raise ValueError(
            f"{path}: not a weights file (holds a {type(tree).__name__}, not a parameter dict)"
        )
    return validated(flatten(tree), trunk, str(path))
