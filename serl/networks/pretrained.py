"""The one-off converter of the commonly shared HIL-SERL ResNet-10 pickle into our msgpack format
(`serl.networks.trunk_weights`).

The shared file is a pickle; `import_shared_weights` is the single place in the project that
unpickles, on the user's explicit request (`serl import-encoder FILE`), after a warning. A test
keeps it that way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from serl.networks.trunk_weights import (
    Path_,
    flatten,
    join_path,
    save_trunk_params,
    validated,
)

# Inside a ResNetBlock: the shared file's names -> ours. Convs keep their names; the group norms
# were auto-named (MyGroupNorm_i from upstream's GroupNorm subclass, GroupNorm_i in some exports),
# and a few variants left the projection norm unnamed, so it appears as the third group norm.
_BLOCK_RENAMES = {
    "Conv_0": "Conv_0", "Conv_1": "Conv_1", "conv_proj": "conv_proj",
    "norm_0": "norm_0", "MyGroupNorm_0": "norm_0", "GroupNorm_0": "norm_0",
    "norm_1": "norm_1", "MyGroupNorm_1": "norm_1", "GroupNorm_1": "norm_1",
    "norm_proj": "norm_proj", "MyGroupNorm_2": "norm_proj", "GroupNorm_2": "norm_proj",
}
_TOP_LEVEL = (
    "conv_init",
    "norm_init",
    "ResNetBlock_0",
    "ResNetBlock_1",
    "ResNetBlock_2",
    "ResNetBlock_3",
)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def convert_shared_pickle(params_tree: Mapping, note: Callable[[str], None] = _stderr) -> dict:
    """The commonly shared HIL-SERL ResNet-10 parameters (as unpickled: a flax params dict, possibly
    under a top-level "params" key; numpy or jax arrays) -> our `resnet10` trunk parameters,
    validated, float32 numpy.

    Renames the group norms inside each block (MyGroupNorm_0/GroupNorm_0 -> norm_0, ..._1 -> norm_1,
    ..._2 -> norm_proj); other names already match. Top-level entries that are not part of the trunk
    (a pooling head, say) are dropped, each reported through `note`. Raises ValueError naming the
    first mismatch."""
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
        for sub, leaf in flatten(tree[top]).items():
            source = (top, *sub)
            ours = source
            if top.startswith("ResNetBlock_") and sub and sub[0] in _BLOCK_RENAMES:
                ours = (top, _BLOCK_RENAMES[sub[0]], *sub[1:])
            if ours in flat:
                raise ValueError(
                    f"{join_path(ours)}: given twice in the source, as "
                    f"{join_path(source_names[ours])} and {join_path(source)}"
                )
            # jax arrays too; converted here so nothing later touches a device
            flat[ours] = np.asarray(leaf)
            source_names[ours] = source
    return validated(flat, "resnet10", "the shared file", source_names)


def import_shared_weights(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    overwrite: bool = False,
    note: Callable[[str], None] = _stderr,
) -> dict:
    """Convert the shared pickle at `src` into our msgpack file at `dst`; returns the converted
    parameters.

    THE ONLY PLACE IN THE PROJECT THAT UNPICKLES. Unpickling a file can run arbitrary code, so this
    prints a warning first and is only reached from `serl import-encoder`, on a file the user named.
    Refuses an existing `dst` unless `overwrite` (checked before anything is unpickled)."""
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file")
    if src.resolve() == dst.resolve():
        raise ValueError(f"{dst}: the output would replace the input file")
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} exists; pass --force to overwrite it")
    print(
        f"WARNING: {src} is a pickle. Unpickling can run arbitrary code: only import a file you "
        "trust, from a source you trust. (Nothing else in serl unpickles; the converted .msgpack "
        "file holds only arrays.)",
        file=sys.stderr,
        flush=True,
    )
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
