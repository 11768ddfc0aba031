"""The encoder's configuration, importable without jax or flax (task configs load it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# obs[camera + suffix] holds cached trunk features instead of running the trunk
FEATURES_SUFFIX = "_features"


@dataclass(frozen=True)
class EncoderConfig:
    # cameras fed to the networks (empty: state only)
    image_keys: tuple[str, ...] = ()
    # the fixed encoder architectures of DESIGN.md
    trunk: Literal["small", "resnet10"] = "small"
    # keep trunk weights fixed (pretrained resnet10); the pooling still trains
    frozen_trunk: bool = False
    # converted trunk weights (msgpack, see `serl import-encoder`)
    pretrained_path: str | None = None
    # frozen trunk only: its features are computed once per frame at insertion and stored; updates
    # then skip the trunk (and image augmentation, which needs pixels)
    feature_cache: bool = False
    # spatial learned embeddings per channel
    num_spatial_features: int = 8
    # per-camera feature size
    bottleneck_dim: int = 256
    # state embedding size when images are used (raw state otherwise)
    state_latent_dim: int = 64

    def __post_init__(self) -> None:
        if self.feature_cache and not self.frozen_trunk:
            raise ValueError("encoder.feature_cache needs encoder.frozen_trunk: a trained trunk's "
                             "features change")
