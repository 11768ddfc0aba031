"""`serl import-encoder FILE`: convert the commonly shared pretrained ResNet-10 weights (a pickle)
into our msgpack format, once, on explicit request. This is the only command that unpickles
anything, and it warns before it does: only import a file you trust. Training and acting then read
the converted file, which holds arrays only."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serl import-encoder", description=__doc__)
    parser.add_argument("file", type=Path,
                        help="the shared pretrained-weights pickle (a file you trust)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write (default: FILE with suffix .msgpack)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    args = parser.parse_args(argv)
    out = args.out or args.file.with_suffix(".msgpack")

    def fail(message: str) -> int:
        print(f"serl import-encoder: error: {message}", file=sys.stderr)
        return 1

    # Refusals that need neither JAX nor the pickle come first, so they are instant and nothing is
    # unpickled.
    if not args.file.is_file():
        return fail(f"{args.file}: no such file")
    if out.exists() and not args.force:
        return fail(f"{out} exists; pass --force to overwrite it")

    from serl.networks.pretrained import import_shared_weights

    try:
        params = import_shared_weights(args.file, out, overwrite=args.force)
    except (OSError, ValueError) as e:
        return fail(str(e))
    import jax

    leaves = jax.tree_util.tree_leaves(params)
    count = sum(leaf.size for leaf in leaves)
    print(
        f"wrote {out}: resnet10 trunk weights, {len(leaves)} arrays, {count:,} parameters "
        f"(float32, {out.stat().st_size / 2**20:.1f} MiB)"
    )
    print(
        "To use them, select the resnet10 encoder with a frozen trunk and point its pretrained "
        "path at this file (EncoderConfig fields trunk, frozen_trunk, pretrained_path), e.g.:\n"
        f"  --agent.encoder.trunk resnet10 --agent.encoder.frozen-trunk True "
        f"--agent.encoder.pretrained-path {out}\n"
        "(the exact flag prefix depends on the command; see its --help)"
    )
    return 0
