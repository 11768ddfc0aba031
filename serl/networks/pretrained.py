"""Pretrained trunk weights: our on-disk format (flax msgpack, validated on load) and the one-off converter of the
commonly shared HIL-SERL ResNet-10 pickle.

Run time only ever reads msgpack (`load_trunk_params`), which holds arrays and nothing executable. The shared file
is a pickle; `import_shared_weights` is the single place in the project that unpickles, on the user's explicit
request (`serl import-encoder FILE`), after a warning. A test keeps it that way.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from serl.networks.observation_encoder import EncoderConfig

Path_ = tuple[str, ...]

# Inside a ResNetBlock: the shared file's names -> ours. Convs keep their names; the group norms were auto-named
# (MyGroupNorm_i from upstream's GroupNorm subclass, GroupNorm_i in some exports), and a few variants left the
# projection norm unnamed, so it appears as the third group norm.
_BLOCK_RENAMES = {
    "Conv_0": "Conv_0", "Conv_1": "Conv_1", "conv_proj": "conv_proj",
    "norm_0": "norm_0", "MyGroupNorm_0": "norm_0", "GroupNorm_0": "norm_0",
    "norm_1": "norm_1", "MyGroupNorm_1": "norm_1", "GroupNorm_1": "norm_1",
    "norm_proj": "norm_proj", "MyGroupNorm_2": "norm_proj", "GroupNorm_2": "norm_proj",
}
_TOP_LEVEL = ("conv_init", "norm_init", "ResNetBlock_0", "ResNetBlock_1", "ResNetBlock_2", "ResNetBlock_3")


def _join(path: Path_) -> str:
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
    return tuple((path, tuple(leaf.shape)) for path, leaf in flatten_dict(variables["params"]).items())


def expected_trunk_shapes(trunk: str = "resnet10", image_size: int = 128) -> dict[Path_, tuple[int, ...]]:
    """Every parameter of the trunk, path (e.g. `("ResNetBlock_2", "Conv_1", "kernel")`) -> shape, in sorted
    path order (the order in which the first mismatch is found). Computed abstractly (`jax.eval_shape`), so nothing
    is allocated."""
    return dict(_expected(trunk, image_size))


def _flatten(tree: Any, prefix: Path_ = ()) -> dict[Path_, Any]:
    """Nested mappings -> {path: leaf}. Any mapping counts (dict, flax FrozenDict); an empty one is kept as a leaf
    so that it shows up as unexpected rather than vanishing."""
    if isinstance(tree, Mapping) and tree:
        out: dict[Path_, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, (*prefix, key)))
        return out
    return {prefix: tree}


def _unflatten(flat: dict[Path_, Any]) -> dict:
    out: dict = {}
    for path, leaf in flat.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = leaf
    return out


def _check(flat: dict[Path_, Any], trunk: str) -> tuple[dict[Path_, np.ndarray], list[tuple[Path_, str]]]:
    """(float32 arrays in module order, mismatches as (path, message)): the trunk's parameters in order, then any
    the trunk does not have."""
    expected = expected_trunk_shapes(trunk)
    arrays, mismatches = {}, []
    for path, shape in expected.items():
        if path not in flat:
            mismatches.append((path, f"missing (expected shape {shape})"))
            continue
        leaf = flat[path]
        if not isinstance(leaf, np.ndarray | np.generic) and not hasattr(leaf, "__array__"):
            mismatches.append((path, f"expected an array of shape {shape}, got {type(leaf).__name__}"))
            continue
        array = np.asarray(leaf)
        if not np.issubdtype(array.dtype, np.floating) and array.dtype.name != "bfloat16":
            mismatches.append((path, f"expected a float array, got dtype {array.dtype}"))
        elif array.shape != shape:
            mismatches.append((path, f"expected {shape}, got {array.shape}"))
        else:
            arrays[path] = array.astype(np.float32)  # a copy for every dtype, so callers may keep or mutate it
    mismatches += [(path, f"unexpected parameter (not part of the {trunk} trunk)") for path in flat
                   if path not in expected]
    return arrays, mismatches


def _validated(flat: dict[Path_, Any], trunk: str, where: str, source_names: dict[Path_, Path_] | None = None) -> dict:
    arrays, mismatches = _check(flat, trunk)
    if mismatches:
        path, message = mismatches[0]
        origin = (source_names or {}).get(path)
        named = f" (named {_join(origin)} in the source)" if origin and origin != path else ""
        more = f"; {len(mismatches) - 1} more mismatch(es)" if len(mismatches) > 1 else ""
        raise ValueError(f"{_join(path)}: {message}{named} [{where} is not valid {trunk} trunk weights{more}]")
    return _unflatten(arrays)


def save_trunk_params(path: str | os.PathLike, params: Mapping) -> None:
    """Write trunk parameters as flax msgpack, atomically: a temporary file beside `path`, fsynced, then renamed over
    `path` (readers see the old file or the complete new one, never a partial one). Does not validate; the
    converter validates before saving and `load_trunk_params` validates on every load."""
    from flax import serialization

    path = Path(path)
    data = serialization.to_bytes(_unflatten({k: np.asarray(v) for k, v in _flatten(params).items()}))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0o022)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would make the weights private to whoever converted them
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def load_trunk_params(path: str | os.PathLike, trunk: str = "resnet10") -> dict:
    """Trunk parameters saved by `save_trunk_params` (or `serl import-encoder`), as float32 numpy arrays in flax's
    nested-dict layout (`{"conv_init": {"kernel": ...}, ...}`). Raises ValueError naming the file if it is not
    msgpack, or naming the first parameter that is missing, unexpected, of the wrong shape or not a float."""
    from flax import serialization

    data = Path(path).read_bytes()
    try:
        tree = serialization.msgpack_restore(data)
    except Exception as e:  # msgpack and flax raise several types for truncated or foreign bytes
        raise ValueError(f"{path}: not a valid msgpack weights file ({type(e).__name__}: {e})") from None
    if not isinstance(tree, Mapping):
        raise ValueError(f"{path}: not a weights file (holds a {type(tree).__name__}, not a parameter dict)")
    return _validated(_flatten(tree), trunk, str(path))


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def convert_shared_pickle(params_tree: Mapping, note: Callable[[str], None] = _stderr) -> dict:
    """The commonly shared HIL-SERL ResNet-10 parameters (as unpickled: a flax params dict, possibly under a
    top-level "params" key; numpy or jax arrays) -> our `resnet10` trunk parameters, validated, float32 numpy.

    Renames the group norms inside each block (MyGroupNorm_0/GroupNorm_0 -> norm_0, ..._1 -> norm_1, ..._2 ->
    norm_proj); other names already match. Top-level entries that are not part of the trunk (a pooling head, say)
    are dropped, each reported through `note`. Raises ValueError naming the first mismatch."""
    tree = params_tree
    while isinstance(tree, Mapping) and "params" in tree and not any(k in tree for k in _TOP_LEVEL):
        tree = tree["params"]
    if not isinstance(tree, Mapping):
        raise ValueError(f"expected a dict of parameters, got {type(tree).__name__}")
    for key in tree:
        if key not in _TOP_LEVEL:
            note(f"note: ignoring {key!r}: not part of the resnet10 trunk")

    flat: dict[Path_, Any] = {}
    source_names: dict[Path_, Path_] = {}
    for top in _TOP_LEVEL:
        if top not in tree:
            continue  # reported as missing by the validation, with the expected shape
        for sub, leaf in _flatten(tree[top]).items():
            source = (top, *sub)
            ours = source
            if top.startswith("ResNetBlock_") and sub and sub[0] in _BLOCK_RENAMES:
                ours = (top, _BLOCK_RENAMES[sub[0]], *sub[1:])
            if ours in flat:
                raise ValueError(f"{_join(ours)}: given twice in the source, as {_join(source_names[ours])} and "
                                 f"{_join(source)}")
            flat[ours] = np.asarray(leaf)  # jax arrays too; converted here so nothing later touches a device
            source_names[ours] = source
    return _validated(flat, "resnet10", "the shared file", source_names)


def import_shared_weights(src: str | os.PathLike, dst: str | os.PathLike, *, overwrite: bool = False,
                          note: Callable[[str], None] = _stderr) -> dict:
    """Convert the shared pickle at `src` into our msgpack file at `dst`; returns the converted parameters.

    THE ONLY PLACE IN THE PROJECT THAT UNPICKLES. Unpickling a file can run arbitrary code, so this prints a warning
    first and is only reached from `serl import-encoder`, on a file the user named. Refuses an existing `dst`
    unless `overwrite` (checked before anything is unpickled)."""
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file")
    if src.resolve() == dst.resolve():
        raise ValueError(f"{dst}: the output would replace the input file")
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} exists; pass --force to overwrite it")
    print(f"WARNING: {src} is a pickle. Unpickling can run arbitrary code: only import a file you trust, from a "
          "source you trust. (Nothing else in serl unpickles; the converted .msgpack file holds only arrays.)",
          file=sys.stderr, flush=True)
    import pickle

    try:
        with open(src, "rb") as f:
            tree = pickle.load(f)
    except Exception as e:
        raise ValueError(f"{src}: could not unpickle ({type(e).__name__}: {e})") from None
    try:
        params = convert_shared_pickle(tree, note=note)
    except ValueError as e:
        raise ValueError(f"{src}: {e}") from None
    save_trunk_params(dst, params)
    return params


def frozen_params_for(cfg: EncoderConfig) -> dict | None:
    """The `frozen` argument of the agents' `create(...)` for an `EncoderConfig`: `{"trunk": weights}` loaded from
    `cfg.pretrained_path` when the trunk is frozen and a path is given; None otherwise (a frozen trunk without a
    path keeps its random initialisation; a config without cameras has no trunk). Fine-tuning a trainable trunk
    from pretrained weights is not supported yet: a path with `frozen_trunk=False` raises ValueError."""
    if not cfg.pretrained_path:
        return None
    if not cfg.frozen_trunk:
        raise ValueError(f"pretrained_path={cfg.pretrained_path!r} with frozen_trunk=False: fine-tuning a trunk from "
                         "pretrained weights is not supported yet; set frozen_trunk True or drop pretrained_path")
    if not cfg.image_keys:
        return None
    return {"trunk": load_trunk_params(cfg.pretrained_path, cfg.trunk)}
