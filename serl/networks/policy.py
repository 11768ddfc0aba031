"""The tanh-squashed diagonal Gaussian policy head and its log-probabilities."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from serl.networks.mlp import MLP, default_init

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class TanhGaussianHead(nn.Module):
    """Features -> (mean, log_std) of the pre-tanh Gaussian."""

    hidden_dims: tuple[int, ...]
    action_dim: int
    # a residual policy: the mean starts at exactly zero and the spread at `initial_log_std`
    residual: bool = False
    initial_log_std: float = -2.3

    @nn.compact
    def __call__(self, features: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        x = MLP(self.hidden_dims, activate_final=True)(features)
        if self.residual:
            zeros = nn.initializers.zeros
            mean = nn.Dense(self.action_dim, kernel_init=zeros)(x)
            log_std = nn.Dense(self.action_dim, kernel_init=zeros,
                               bias_init=nn.initializers.constant(self.initial_log_std))(x)
        else:
            mean = nn.Dense(self.action_dim, kernel_init=default_init())(x)
            log_std = nn.Dense(self.action_dim, kernel_init=default_init())(x)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


def tanh_gaussian_log_prob(
    pre_tanh: jnp.ndarray, mean: jnp.ndarray, log_std: jnp.ndarray
) -> jnp.ndarray:
    """log pi(tanh(u)) for pre-tanh sample u, with the change of variables summed over the action
    dims.

    log|d tanh(u)/du| = log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), the numerically stable
    form.
    """
    gauss = -0.5 * (((pre_tanh - mean) / jnp.exp(log_std)) ** 2 + 2 * log_std + jnp.log(2 * jnp.pi))
    log_det = 2.0 * (jnp.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))
    return jnp.sum(gauss - log_det, axis=-1)


def sample_tanh_gaussian(mean, log_std, rng) -> tuple[jnp.ndarray, jnp.ndarray]:
    """A reparameterised action in (-1, 1) and its log-probability."""
    u = mean + jnp.exp(log_std) * jax.random.normal(rng, mean.shape)
    return jnp.tanh(u), tanh_gaussian_log_prob(u, mean, log_std)
