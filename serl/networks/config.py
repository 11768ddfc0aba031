"""The encoder's configuration, importable without jax or flax (task configs load it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# obs[camera + suffix] holds cached trunk features instead of running the trunk
FEATURES_SUFFIX = "_features"


class MissingTrunkWeights(ValueError):
    """A frozen trunk with neither pretrained weights nor the explicit random opt-in."""


@dataclass(frozen=True)
class EncoderConfig:
    # cameras fed to the networks (empty: state only)
    image_keys: tuple[str, ...] = ()
    # the fixed encoder architectures of DESIGN.md
    trunk: Literal["small", "resnet10"] = "small"
    # keep trunk weights fixed (pretrained resnet10); the pooling still trains
    frozen_trunk: bool = False
    # converted trunk weights (msgpack, see `serl import-encoder`); a frozen trunk needs them
    pretrained_path: str | None = None
    # a frozen trunk without pretrained weights keeps its random initialisation: an explicit
    # choice for simulated tasks (random conv features); without it such a config is refused
    random_frozen_trunk: bool = False
    # the random frozen trunk's seed: the learner and every actor draw the same weights from it
    # (`serl.networks.trunk`), whatever the run's seed
    trunk_seed: int = 0
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
        if self.random_frozen_trunk and (self.pretrained_path or not self.frozen_trunk):
            raise ValueError("encoder.random_frozen_trunk is for a frozen trunk without "
                             "pretrained_path")
        if self.feature_cache and not self.frozen_trunk:
            raise ValueError("encoder.feature_cache needs encoder.frozen_trunk: a trained trunk's "
                             "features change")


def check_trunk_weights(cfg: EncoderConfig) -> None:
    """`MissingTrunkWeights` (naming `serl import-encoder`) for a frozen trunk over cameras with
    neither pretrained weights nor the explicit `random_frozen_trunk` choice."""
    if cfg.frozen_trunk and cfg.image_keys and not (cfg.pretrained_path or cfg.random_frozen_trunk):
        raise MissingTrunkWeights(
            f"agent.encoder freezes a {cfg.trunk} trunk but names no pretrained weights, so it "
            "would train on random features. Convert the shared weights once with `serl "
            "import-encoder FILE --out WEIGHTS.msgpack` and pass --agent.encoder.pretrained-path "
            "WEIGHTS.msgpack; a simulated task may choose random frozen features with "
            "--agent.encoder.random-frozen-trunk")
