"""Pixel encoders fixed by DESIGN.md so benchmarks compare like with like, one per camera, then
pooled.

- `small`: 4 conv layers (32 channels, 3x3, strides 2, 2, 2, 1).
- `resnet10`: ResNet-10 with GroupNorm (4 groups), ImageNet input normalisation; module names match
  the commonly shared pretrained-weights file so `serl import-encoder` converts it by name. Both end
  in spatial learned embeddings (8 features per channel) and a 256-d layer-normed tanh bottleneck.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from serl.networks.mlp import default_init

IMAGENET_MEAN = jnp.array([0.485, 0.456, 0.406])
IMAGENET_STD = jnp.array([0.229, 0.224, 0.225])


class SmallTrunk(nn.Module):
    @nn.compact
    def __call__(self, images: jnp.ndarray) -> jnp.ndarray:
        x = images.astype(jnp.float32) / 255.0 - 0.5
        for stride in (2, 2, 2, 1):
            x = nn.relu(
                nn.Conv(32, (3, 3), strides=stride, padding="SAME", kernel_init=default_init())(x)
            )
        return x


class ResNetBlock(nn.Module):
    features: int
    stride: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        norm = lambda name: nn.GroupNorm(num_groups=4, epsilon=1e-5, name=name)  # noqa: E731
        y = nn.Conv(
            self.features, (3, 3), self.stride, padding="SAME", use_bias=False, name="Conv_0"
        )(x)
        y = nn.relu(norm("norm_0")(y))
        y = nn.Conv(self.features, (3, 3), 1, padding="SAME", use_bias=False, name="Conv_1")(y)
        y = norm("norm_1")(y)
        if self.stride != 1 or x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1, 1), self.stride, use_bias=False, name="conv_proj")(x)
            x = norm("norm_proj")(x)
        return nn.relu(x + y)


class ResNet10Trunk(nn.Module):
    """128x128x3 uint8 -> 4x4x512 features."""

    @nn.compact
    def __call__(self, images: jnp.ndarray) -> jnp.ndarray:
        x = (images.astype(jnp.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        x = nn.Conv(64, (7, 7), 2, padding=[(3, 3), (3, 3)], use_bias=False, name="conv_init")(x)
        x = nn.relu(nn.GroupNorm(num_groups=4, epsilon=1e-5, name="norm_init")(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        for i, (features, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2))):
            x = ResNetBlock(features, stride, name=f"ResNetBlock_{i}")(x)
        return x


TRUNKS = {"small": SmallTrunk, "resnet10": ResNet10Trunk}


class SpatialLearnedEmbeddings(nn.Module):
    """(..., H, W, C) -> (..., C * num_features): one learned H x W weighting per channel and
    feature."""

    num_features: int = 8

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        h, w, c = x.shape[-3:]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (h, w, c, self.num_features))
        out = jnp.einsum("...hwc,hwcf->...cf", x, kernel)
        return out.reshape(*x.shape[:-3], c * self.num_features)


class PooledBottleneck(nn.Module):
    """Trunk features -> spatial embeddings -> Dense -> LayerNorm -> tanh."""

    num_spatial_features: int = 8
    bottleneck_dim: int = 256

    @nn.compact
    def __call__(self, features: jnp.ndarray) -> jnp.ndarray:
        x = SpatialLearnedEmbeddings(self.num_spatial_features)(features)
        x = nn.Dense(self.bottleneck_dim, kernel_init=default_init())(x)
        return nn.tanh(nn.LayerNorm()(x))
