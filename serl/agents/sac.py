"""SAC as RLPD runs it: a layer-normed critic ensemble with REDQ-style subsampling, a high
critic-to-actor ratio (a `lax.scan` inside one jitted update), a tanh-Gaussian policy and a Lagrange
temperature. The pixel encoder's parameters live in the critic's train state; the actor reads them
with a stop-gradient. With `residual_scale` the policy corrects a base policy's action carried in
the observation (`executed`); the critics see the executed action. A frozen trunk is no part of the
agent: `update` and the policy functions take it as an argument
(`serl.networks.trunk.frozen_trunk`), and `update` donates the old agent's buffers."""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training.train_state import TrainState

from serl.agents.common import (
    augment_batch,
    bind_trunk,
    global_norm,
    guarded_ratio_update,
    soft_update,
)
from serl.agents.config import SACConfig
from serl.envs.contract import BASE_ACTION_KEY
from serl.networks.config import FEATURES_SUFFIX
from serl.networks.ensemble import Ensemble, subsample
from serl.networks.mlp import MLP
from serl.networks.observation_encoder import encode, init_encoder, trunk_feature_shape
from serl.networks.policy import TanhGaussianHead, sample_tanh_gaussian


class CriticHead(nn.Module):
    hidden_dims: tuple[int, ...]
    use_layer_norm: bool

    @nn.compact
    def __call__(self, features, actions):
        x = jnp.concatenate([features, actions], axis=-1)
        return MLP((*self.hidden_dims, 1), use_layer_norm=self.use_layer_norm)(x).squeeze(-1)


class Temperature(nn.Module):
    initial: float

    @nn.compact
    def __call__(self):
        return jnp.exp(
            self.param("log_temp", lambda _: jnp.array(math.log(self.initial), jnp.float32))
        )


def train_state(params, tx) -> TrainState:
    """A TrainState whose step is a strongly typed int32 array, as a checkpoint restores it (a
    weak-typed step would make the first update after a restore compile again)."""
    return TrainState.create(apply_fn=None, params=params, tx=tx).replace(
        step=jnp.zeros((), jnp.int32)
    )


def critic_module(cfg: SACConfig) -> Ensemble:
    head = functools.partial(CriticHead, cfg.hidden_dims, cfg.critic_layer_norm)
    return Ensemble(head, cfg.critic_ensemble_size)


def actor_module(cfg: SACConfig, action_dim: int) -> TanhGaussianHead:
    return TanhGaussianHead(cfg.hidden_dims, action_dim, residual=cfg.residual_scale is not None)


def policy_features(feats: jax.Array, obs: dict, cfg: SACConfig) -> jax.Array:
    """What the actor and critics read: the encoder's features, and a residual's base action."""
    if cfg.residual_scale is None:
        return feats
    return jnp.concatenate([feats, obs[BASE_ACTION_KEY].astype(feats.dtype)], axis=-1)


def executed(actions: jax.Array, obs: dict, cfg: SACConfig) -> jax.Array:
    """The action the env executes for the policy's output: itself, or for a residual the base's
    action plus the scaled correction, clipped to [-1, 1]."""
    if cfg.residual_scale is None:
        return actions
    return jnp.clip(obs[BASE_ACTION_KEY] + cfg.residual_scale * actions, -1.0, 1.0)


def _batched(obs: dict) -> tuple[dict, bool]:
    single = obs["state"].ndim == 1
    return (jax.tree.map(lambda x: x[None], obs) if single else obs), single


@functools.partial(jax.jit, static_argnames=("cfg", "action_dim"))
def sample_actions(
    params: dict, obs: dict, rng: jax.Array, cfg: SACConfig, action_dim: int, trunk=None
) -> jax.Array:
    """Exploration actions in [-1, 1] from `policy_params()` for one observation or a batch;
    `trunk`: the frozen trunk's parameters, if the config has one."""
    obs, single = _batched(obs)
    feats = policy_features(encode(params["encoder"], trunk, obs, cfg.encoder), obs, cfg)
    mean, log_std = actor_module(cfg, action_dim).apply({"params": params["actor"]}, feats)
    actions, _ = sample_tanh_gaussian(mean, log_std, rng)
    actions = executed(actions, obs, cfg)
    return actions[0] if single else actions


@functools.partial(jax.jit, static_argnames=("cfg", "action_dim"))
def eval_actions(params: dict, obs: dict, cfg: SACConfig, action_dim: int, trunk=None) -> jax.Array:
    """Deterministic actions (the squashed mean) for evaluation."""
    obs, single = _batched(obs)
    feats = policy_features(encode(params["encoder"], trunk, obs, cfg.encoder), obs, cfg)
    mean, _ = actor_module(cfg, action_dim).apply({"params": params["actor"]}, feats)
    actions = executed(jnp.tanh(mean), obs, cfg)
    return actions[0] if single else actions


class SACAgent(struct.PyTreeNode):
    actor: TrainState
    critic: TrainState  # params: {"encoder": ..., "q": ...}
    target_critic_params: dict
    temperature: TrainState
    rng: jax.Array
    skipped_updates: jax.Array  # updates dropped by the non-finite guard
    cfg: SACConfig = struct.field(pytree_node=False)
    action_dim: int = struct.field(pytree_node=False)

    @classmethod
    def create(
        cls, rng: jax.Array, obs_example: dict, action_dim: int, cfg: SACConfig
    ) -> SACAgent:
        """Build networks and optimizers for an example observation (unbatched) and the action size
        (a frozen trunk is not built: only its output shape matters here)."""
        obs = jax.tree.map(lambda x: jnp.asarray(x)[None], obs_example)
        return _create_jit(cls, rng, obs, action_dim, cfg)

    @classmethod
    def _create(cls, rng: jax.Array, obs: dict, action_dim: int, cfg: SACConfig) -> SACAgent:
        rng, enc_rng, actor_rng, critic_rng, temp_rng = jax.random.split(rng, 5)
        enc_params = init_encoder(enc_rng, obs, cfg.encoder)
        feats = policy_features(encode(enc_params, None, trunk_output_example(obs, cfg),
                                       cfg.encoder), obs, cfg)
        actions = jnp.zeros((1, action_dim))
        opt = optax.adam(cfg.learning_rate)
        q_params = critic_module(cfg).init(critic_rng, feats, actions)["params"]
        critic_params = {"encoder": enc_params, "q": q_params}
        actor_params = actor_module(cfg, action_dim).init(actor_rng, feats)["params"]
        temp_params = Temperature(cfg.init_temperature).init(temp_rng)["params"]
        return cls(
            actor=train_state(actor_params, opt),
            critic=train_state(critic_params, opt),
            # a copy: `update` donates the agent, and a buffer cannot be donated twice
            target_critic_params=jax.tree.map(jnp.copy, critic_params),
            temperature=train_state(temp_params, opt),
            rng=rng,
            skipped_updates=jnp.zeros((), jnp.int32),
            cfg=cfg,
            action_dim=action_dim,
        )

    # ---------- what the actor needs ----------
    def policy_params(self) -> dict:
        """What actors receive: the trained encoder (no frozen trunk) and the actor."""
        return {"encoder": self.critic.params["encoder"], "actor": self.actor.params}

    @property
    def target_entropy(self) -> float:
        return (
            self.cfg.target_entropy if self.cfg.target_entropy is not None else -self.action_dim / 2
        )

    # ---------- pieces ----------
    def features(self, params: dict, obs: dict) -> jax.Array:
        """Encoder output (and a residual's base action); a frozen trunk's features must already
        be in `obs` (`bind_trunk`)."""
        return policy_features(encode(params["encoder"], None, obs, self.cfg.encoder), obs,
                               self.cfg)

    def q_values(self, q_params: dict, feats: jax.Array, actions: jax.Array) -> jax.Array:
        # (ensemble, batch)
        return critic_module(self.cfg).apply({"params": q_params}, feats, actions)

    def policy(
        self, actor_params: dict, feats: jax.Array, rng: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        mean, log_std = actor_module(self.cfg, self.action_dim).apply(
            {"params": actor_params}, feats
        )
        return sample_tanh_gaussian(mean, log_std, rng)

    def critic_step(self, batch: dict, rng: jax.Array) -> tuple[SACAgent, dict]:
        cfg = self.cfg
        next_rng, sub_rng = jax.random.split(rng)
        next_feats = jax.lax.stop_gradient(
            self.features(self.critic.params, batch["next_observations"])
        )
        next_actions, next_logp = self.policy(self.actor.params, next_feats, next_rng)
        next_actions = executed(next_actions, batch["next_observations"], cfg)
        target_feats = self.features(self.target_critic_params, batch["next_observations"])
        target_q = self.q_values(self.target_critic_params["q"], target_feats, next_actions)
        target_q = subsample(target_q, sub_rng, cfg.critic_subsample).min(axis=0)
        if cfg.backup_entropy:
            target_q = target_q - self.temperature_value() * next_logp
        target = batch["rewards"] + cfg.discount * batch["masks"] * target_q

        def loss_fn(params):
            qs = self.q_values(
                params["q"], self.features(params, batch["observations"]), batch["actions"]
            )
            return ((qs - target) ** 2).mean(), qs.mean()

        (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(self.critic.params)
        critic = self.critic.apply_gradients(grads=grads)
        targets = soft_update(self.target_critic_params, critic.params, cfg.tau)
        info = {
            "critic_loss": loss,
            "q": q_mean,
            "target_q": target.mean(),
            "critic_grad_norm": global_norm(grads),
        }
        return self.replace(critic=critic, target_critic_params=targets), info

    def temperature_value(self) -> jax.Array:
        return Temperature(self.cfg.init_temperature).apply({"params": self.temperature.params})

    def actor_step(self, batch: dict, rng: jax.Array) -> tuple[SACAgent, dict]:
        feats = jax.lax.stop_gradient(self.features(self.critic.params, batch["observations"]))
        alpha = self.temperature_value()

        def loss_fn(params):
            actions, logp = self.policy(params, feats, rng)
            actions = executed(actions, batch["observations"], self.cfg)
            q = self.q_values(self.critic.params["q"], feats, actions).mean(axis=0)
            return (alpha * logp - q).mean(), -logp.mean()

        (loss, entropy), grads = jax.value_and_grad(loss_fn, has_aux=True)(self.actor.params)
        actor = self.actor.apply_gradients(grads=grads)
        return self.replace(actor=actor), {"actor_loss": loss, "entropy": entropy}

    def temperature_step(self, entropy: jax.Array) -> tuple[SACAgent, dict]:
        def loss_fn(params):
            alpha = Temperature(self.cfg.init_temperature).apply({"params": params})
            return alpha * (entropy - self.target_entropy)

        loss, grads = jax.value_and_grad(loss_fn)(self.temperature.params)
        temperature = self.temperature.apply_gradients(grads=grads)
        new = self.replace(temperature=temperature)
        return new, {"temperature_loss": loss, "temperature": new.temperature_value()}

    def augment(self, batch: dict) -> tuple[SACAgent, dict]:
        """Random-crop the batch's frames (once per minibatch; every network of the step sees the
        same crop)."""
        rng, aug_rng = jax.random.split(self.rng)
        return self.replace(rng=rng), augment_batch(
            batch, self.cfg.encoder.image_keys, aug_rng, self.cfg.augment_pad
        )

    def step(self, batch: dict, full: bool, trunk=None) -> tuple[SACAgent, dict]:
        """Augment, run the frozen trunk (if any) once over the frames, then one critic update, and
        for the last minibatch also the actor and temperature."""
        agent, batch = self.augment(batch)
        return agent.step_augmented(bind_trunk(batch, trunk, self.cfg.encoder), full)

    def step_augmented(self, batch: dict, full: bool) -> tuple[SACAgent, dict]:
        rng, critic_rng, actor_rng = jax.random.split(self.rng, 3)
        agent, info = self.replace(rng=rng).critic_step(batch, critic_rng)
        if full:
            agent, actor_info = agent.actor_step(batch, actor_rng)
            agent, temp_info = agent.temperature_step(actor_info["entropy"])
            info = {**info, **actor_info, **temp_info}
        return agent, info

    @functools.partial(jax.jit, donate_argnums=0)
    def update(self, batch: dict, trunk=None) -> tuple[SACAgent, dict]:
        """critic_actor_ratio minibatches stacked on the leading axis of every leaf: (ratio, batch,
        ...); `trunk`: the frozen trunk's parameters, if the config has one and the batch carries
        frames. The agent's buffers are donated: the old agent is unusable afterwards."""
        return guarded_ratio_update(
            self, batch, lambda a, mb, full: a.step(mb, full, trunk), self.cfg.scan_ratio
        )


def trunk_output_example(obs: dict, cfg: SACConfig) -> dict:
    """`obs` with a frozen trunk's cameras as zero features of its output shape: enough to
    initialise the layers above it without building the trunk."""
    enc = cfg.encoder
    if not (enc.frozen_trunk and enc.image_keys):
        return obs
    out = {k: v for k, v in obs.items() if k not in enc.image_keys}
    for key in enc.image_keys:
        shape = trunk_feature_shape(enc, obs[key].shape[1:])
        out[key + FEATURES_SUFFIX] = jnp.zeros((obs[key].shape[0], *shape), jnp.float32)
    return out


# Initialising inside one jit is several times faster than op-by-op on a CPU.
_create_jit = jax.jit(lambda cls, *args: cls._create(*args), static_argnums=(0, 3, 4))
