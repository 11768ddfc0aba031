"""The hybrid agent of HIL-SERL: SAC over the arm dimensions (the axes the policy commands: all
but the last action entry) plus a double-DQN grasp critic over {close, stay, open} with its own
target network. The grasp critic's reward adds the transition's grasp_penalty; the action is arm
action ++ (argmax - 1)."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training.train_state import TrainState

from serl.agents import sac
from serl.agents.common import bind_trunk, guarded_ratio_update, soft_update
from serl.agents.config import SACConfig
from serl.envs.contract import GRIPPER_CLOSE, GRIPPER_OPEN
from serl.networks.mlp import MLP
from serl.networks.observation_encoder import encode

GRASP_ACTIONS = 3  # close, stay, open


class GraspCritic(nn.Module):
    hidden_dims: tuple[int, ...]

    @nn.compact
    def __call__(self, features):
        return MLP((*self.hidden_dims, GRASP_ACTIONS), use_layer_norm=True)(features)


def grasp_index(gripper: jax.Array) -> jax.Array:
    """Recorded gripper command -> {0: close, 1: stay, 2: open}, with the contract's thresholds."""
    return jnp.where(gripper <= GRIPPER_CLOSE, 0, jnp.where(gripper >= GRIPPER_OPEN, 2, 1))


def _grasp_command(params: dict, feats: jax.Array, cfg: SACConfig) -> jax.Array:
    q = GraspCritic(cfg.hidden_dims).apply({"params": params}, feats)
    return (jnp.argmax(q, axis=-1) - 1).astype(jnp.float32)[..., None]


@functools.partial(jax.jit, static_argnames=("cfg", "arm_dims"))
def sample_actions(
    params: dict, obs: dict, rng: jax.Array, cfg: SACConfig, arm_dims: int, trunk=None
) -> jax.Array:
    """Arm actions sampled, the gripper's chosen greedily; `trunk` as in `sac.sample_actions`."""
    obs, single = sac._batched(obs)
    arm = sac.sample_actions(params, obs, rng, cfg=cfg, action_dim=arm_dims, trunk=trunk)
    feats = encode(params["encoder"], trunk, obs, cfg.encoder)
    actions = jnp.concatenate([arm, _grasp_command(params["grasp"], feats, cfg)], axis=-1)
    return actions[0] if single else actions


@functools.partial(jax.jit, static_argnames=("cfg", "arm_dims"))
def eval_actions(params: dict, obs: dict, cfg: SACConfig, arm_dims: int, trunk=None) -> jax.Array:
    obs, single = sac._batched(obs)
    arm = sac.eval_actions(params, obs, cfg=cfg, action_dim=arm_dims, trunk=trunk)
    feats = encode(params["encoder"], trunk, obs, cfg.encoder)
    actions = jnp.concatenate([arm, _grasp_command(params["grasp"], feats, cfg)], axis=-1)
    return actions[0] if single else actions


class HybridAgent(struct.PyTreeNode):
    sac: sac.SACAgent
    grasp: TrainState
    grasp_target_params: dict
    skipped_updates: jax.Array
    cfg: SACConfig = struct.field(pytree_node=False)

    @classmethod
    def create(cls, rng: jax.Array, obs_example: dict, action_dim: int,
               cfg: SACConfig) -> HybridAgent:
        if action_dim < 2:
            raise ValueError(
                f"the hybrid agent needs an action of at least one arm axis and the gripper, got "
                f"{action_dim}-D"
            )
        rng, grasp_rng = jax.random.split(rng)
        arm = sac.SACAgent.create(rng, obs_example, action_dim - 1, cfg)
        obs = jax.tree.map(lambda x: jnp.asarray(x)[None], obs_example)
        # the shape only: no encoder pass
        feats = jax.eval_shape(lambda p, o: arm.features(p, sac.trunk_output_example(o, cfg)),
                               arm.critic.params, obs)
        params = jax.jit(GraspCritic(cfg.hidden_dims).init)(
            grasp_rng, jnp.zeros(feats.shape, feats.dtype)
        )["params"]
        grasp = sac.train_state(params, optax.adam(cfg.learning_rate))
        return cls(
            sac=arm,
            grasp=grasp,
            # a copy: `update` donates the agent, and a buffer cannot be donated twice
            grasp_target_params=jax.tree.map(jnp.copy, params),
            skipped_updates=jnp.zeros((), jnp.int32),
            cfg=cfg,
        )

    def policy_params(self) -> dict:
        return {**self.sac.policy_params(), "grasp": self.grasp.params}

    def grasp_step(self, batch: dict, rng: jax.Array) -> tuple[HybridAgent, dict]:
        del rng  # the double-DQN update is deterministic given the batch
        params = self.sac.critic.params
        feats = jax.lax.stop_gradient(self.sac.features(params, batch["observations"]))
        next_feats = jax.lax.stop_gradient(self.sac.features(params, batch["next_observations"]))
        net = GraspCritic(self.cfg.hidden_dims)
        next_best = jnp.argmax(net.apply({"params": self.grasp.params}, next_feats), axis=-1)
        next_q = jnp.take_along_axis(
            net.apply({"params": self.grasp_target_params}, next_feats), next_best[:, None], axis=-1
        )[:, 0]
        reward = batch["rewards"] + batch["grasp_penalty"]
        target = reward + self.cfg.discount * batch["masks"] * next_q
        taken = grasp_index(batch["actions"][:, -1])

        def loss_fn(p):
            q = jnp.take_along_axis(net.apply({"params": p}, feats), taken[:, None], axis=-1)[:, 0]
            return ((q - target) ** 2).mean(), q.mean()

        (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(self.grasp.params)
        grasp = self.grasp.apply_gradients(grads=grads)
        targets = soft_update(self.grasp_target_params, grasp.params, self.cfg.tau)
        return self.replace(grasp=grasp, grasp_target_params=targets), {
            "grasp_loss": loss,
            "grasp_q": q_mean,
        }

    def step(self, batch: dict, full: bool, trunk=None) -> tuple[HybridAgent, dict]:
        # One augmentation and one frozen-trunk pass for both critics: the grasp critic then sees
        # the same frames, and XLA can share the encoder passes between them.
        arm, batch = self.sac.augment(batch)
        batch = bind_trunk(batch, trunk, self.cfg.encoder)
        arm, info = arm.step_augmented({**batch, "actions": batch["actions"][:, :-1]}, full)
        agent, grasp_info = self.replace(sac=arm).grasp_step(batch, arm.rng)
        return agent, {**info, **grasp_info}

    @functools.partial(jax.jit, donate_argnums=0)
    def update(self, batch: dict, trunk=None) -> tuple[HybridAgent, dict]:
        """Like `SACAgent.update` (the old agent's buffers donated); batches also need
        `grasp_penalty`."""
        return guarded_ratio_update(
            self, batch, lambda a, mb, full: a.step(mb, full, trunk), self.cfg.scan_ratio
        )
