"""Behaviour cloning on the RL agent's own networks: the task agent's observation encoder, its
tanh-Gaussian actor head over the arm axes and, when the policy commands the gripper, a head of the
grasp critic's shape over {close, stay, open}. The parameters are exactly a `policy_params()` tree
(`{"encoder", "actor"[, "grasp"]}`), so the policy runs through `serl.agents.factory.
policy_functions` as the actor runs an RL policy, and a warm start can copy it into an agent.

Losses, and why:
- arm: mean squared error of the squashed mean, tanh(mean), against the recorded action. Recorded
  operator actions are clipped to [-1, 1] and sit on the bound often; a tanh-Gaussian
  log-likelihood is infinite there (atanh(1)) and drives the log-std down without limit, while the
  squared error is bounded and trains exactly what a deterministic evaluation runs.
- gripper: the recorded command is discrete (the contract's thresholds, `hybrid.grasp_index`):
  3-way cross-entropy on the head's outputs, whose argmax - 1 is the command (`hybrid`'s).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training.train_state import TrainState

from serl.agents.bc_config import BCConfig
from serl.agents.config import SACConfig
from serl.agents.factory import policy_functions
from serl.agents.hybrid import GraspCritic, grasp_index
from serl.agents.sac import actor_module, trunk_output_example
from serl.networks.observation_encoder import encode, init_encoder, trunk_feature_fn
from serl.networks.trunk import frozen_trunk, has_frozen_trunk


def policy_agent_config(agent: SACConfig, bc: BCConfig, gripper: bool) -> SACConfig:
    """The agent config the BC policy is built as: the task agent's encoder, `bc.hidden_dims` (else
    the agent's) and the grasp head exactly when the policy commands the gripper."""
    return dataclasses.replace(agent, hidden_dims=bc.hidden_dims or agent.hidden_dims,
                               grasp_critic=gripper)


def arm_dims(cfg: SACConfig, action_dim: int) -> int:
    """Policy action entries regressed as arm axes (all but the gripper's)."""
    return action_dim - 1 if cfg.grasp_critic else action_dim


def policy_function(cfg: SACConfig, action_dim: int) -> Callable:
    """The deterministic policy, `evaluate(params, obs) -> action` in the policy's action space
    (one observation or a batch; the frozen trunk, if any, built from `cfg.encoder` and bound in):
    `factory.policy_functions`' evaluation, the actor's own."""
    return policy_functions(cfg, action_dim)[1]


def init_params(cfg: SACConfig, obs_example: dict, action_dim: int, seed: int) -> dict:
    """Fresh parameters laid out as the RL agent's `policy_params()` for one example observation
    (unbatched), initialised module by module: building a whole agent would compile its critics
    too (`serl.agents.policy_file` checks the layout against `policy_params_template`)."""
    obs = jax.tree.map(lambda x: jnp.asarray(x)[None], obs_example)
    return jax.device_get(_init(jax.random.PRNGKey(seed), obs, cfg, action_dim))


# one jit: several times faster than op-by-op initialisation on a CPU
@functools.partial(jax.jit, static_argnums=(2, 3))
def _init(rng: jax.Array, obs: dict, cfg: SACConfig, action_dim: int) -> dict:
    enc_rng, actor_rng, grasp_rng = jax.random.split(rng, 3)
    encoder = init_encoder(enc_rng, obs, cfg.encoder)
    feats = encode(encoder, None, trunk_output_example(obs, cfg), cfg.encoder)
    arm = actor_module(cfg, arm_dims(cfg, action_dim))
    params = {"encoder": encoder, "actor": arm.init(actor_rng, feats)["params"]}
    if cfg.grasp_critic:
        params["grasp"] = GraspCritic(cfg.hidden_dims).init(grasp_rng, feats)["params"]
    return params


def bc_loss(params: dict, obs: dict, actions: jax.Array, cfg: SACConfig, action_dim: int,
            gripper_weight: float) -> tuple[jax.Array, dict]:
    """Arm MSE of tanh(mean) plus `gripper_weight` x the gripper's cross-entropy (with a grasp
    head); `obs` may carry a frozen trunk's features (`FEATURES_SUFFIX`)."""
    arm = arm_dims(cfg, action_dim)
    feats = encode(params["encoder"], None, obs, cfg.encoder)
    mean, _ = actor_module(cfg, arm).apply({"params": params["actor"]}, feats)
    arm_mse = jnp.mean((jnp.tanh(mean) - actions[:, :arm]) ** 2)
    info = {"arm_mse": arm_mse}
    loss = arm_mse
    if cfg.grasp_critic:
        logits = GraspCritic(cfg.hidden_dims).apply({"params": params["grasp"]}, feats)
        labels = grasp_index(actions[:, -1])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        info["gripper_ce"] = ce
        info["gripper_accuracy"] = jnp.mean(jnp.argmax(logits, -1) == labels)
        loss = loss + gripper_weight * ce
    return loss, {**info, "loss": loss}


class BCLearner(struct.PyTreeNode):
    """The train state of a BC policy; `update` is the one jitted step."""

    state: TrainState
    cfg: SACConfig = struct.field(pytree_node=False)
    action_dim: int = struct.field(pytree_node=False)
    gripper_weight: float = struct.field(pytree_node=False)

    @classmethod
    def create(cls, params: dict, cfg: SACConfig, action_dim: int, bc: BCConfig) -> BCLearner:
        state = TrainState.create(apply_fn=None, params=params, tx=optax.adam(bc.learning_rate))
        return cls(state=state, cfg=cfg, action_dim=action_dim, gripper_weight=bc.gripper_weight)

    @jax.jit
    def update(self, data: dict, rows: jax.Array) -> tuple[BCLearner, dict]:
        """One Adam step on `data`'s transitions `rows` (`data`: the whole training set, on the
        device once: {"observations": {...}, "actions": ...})."""
        obs = jax.tree.map(lambda x: x[rows], data["observations"])
        loss = functools.partial(bc_loss, obs=obs, actions=data["actions"][rows], cfg=self.cfg,
                                 action_dim=self.action_dim, gripper_weight=self.gripper_weight)
        (_, info), grads = jax.value_and_grad(loss, has_aux=True)(self.state.params)
        return self.replace(state=self.state.apply_gradients(grads=grads)), info


# ---------- data ----------
def split_episodes(names: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(training, held-out) episode names: a seeded shuffle, at least one episode on each side;
    ValueError with fewer than two episodes."""
    names = sorted(names)
    if len(names) < 2:
        raise ValueError(f"behaviour cloning needs at least 2 demonstration episodes (one is held "
                         f"out), found {len(names)}")
    order = np.random.default_rng(seed).permutation(len(names))
    held = min(len(names) - 1, max(1, round(fraction * len(names))))
    return sorted(names[i] for i in order[held:]), sorted(names[i] for i in order[:held])


def stacked(episodes: dict, names: list[str]) -> tuple[dict, np.ndarray]:
    """(observations, actions) of the named episodes' transitions, concatenated in order."""
    obs = {k: np.concatenate([episodes[n]["observations"][k] for n in names])
           for k in episodes[names[0]]["observations"]}
    return obs, np.concatenate([episodes[n]["actions"] for n in names]).astype(np.float32)


def feature_observations(obs: dict, cfg: SACConfig) -> dict:
    """`obs` with a frozen trunk's cameras replaced by its features, computed once per frame (the
    learner's feature cache: float16), so updates run only the trained layers. Unchanged without a
    frozen trunk."""
    if not has_frozen_trunk(cfg.encoder):
        return obs
    compute = trunk_feature_fn(frozen_trunk(cfg.encoder), cfg.encoder)
    out = {k: v for k, v in obs.items() if k not in cfg.encoder.image_keys}
    return {**out, **compute({k: obs[k] for k in cfg.encoder.image_keys})}


def predict(evaluate: Callable, params: dict, obs: dict, batch: int = 256) -> np.ndarray:
    """`evaluate` over every row of `obs` in fixed-size chunks (one compiled shape; the last chunk
    wraps around and its extras are dropped)."""
    n = len(obs["state"])
    out = []
    for start in range(0, n, batch):
        rows = np.arange(start, start + batch) % n
        out.append(np.asarray(evaluate(params, {k: v[rows] for k, v in obs.items()})))
    return np.concatenate(out)[:n]


def action_errors(pred: np.ndarray, target: np.ndarray, gripper: bool) -> dict:
    """Arm mean squared error (overall and per entry) and, with a gripper, the share of gripper
    commands predicted exactly (close, hold, open by the contract's thresholds)."""
    arm = pred.shape[1] - int(gripper)
    per_axis = np.mean((pred[:, :arm] - target[:, :arm]) ** 2, axis=0)
    out = {"arm_mse": float(per_axis.mean()), "arm_mse_per_axis": per_axis.round(6).tolist()}
    if gripper:
        wanted = np.asarray(grasp_index(target[:, -1])) - 1
        out["gripper_accuracy"] = float(np.mean(pred[:, -1] == wanted))
    return out


def baseline_errors(train_actions: np.ndarray, target: np.ndarray, gripper: bool) -> dict:
    """`action_errors` of a constant policy (the training mean arm action, the most common gripper
    command): what a learned policy must beat for its error to mean anything."""
    constant = train_actions.mean(0)
    if gripper:
        counts = np.bincount(np.asarray(grasp_index(train_actions[:, -1])), minlength=3)
        constant[-1] = float(np.argmax(counts) - 1)
    return action_errors(np.broadcast_to(constant, target.shape), target, gripper)


def train(episodes: dict, cfg: SACConfig, bc: BCConfig, log: Callable | None = print,
          prepare: Callable[[dict], dict] | None = None) -> tuple[dict, dict]:
    """Train a BC policy (built as `cfg`, see `policy_agent_config`) on demonstration `episodes`
    (name -> batch with observations and actions), holding out whole episodes. `prepare`: applied
    to observations before anything else (the wire's frame codec round trip). Returns (params,
    report: held-out and training action errors, a constant baseline, the split)."""
    start = time.monotonic()
    train_names, val_names = split_episodes(list(episodes), bc.validation_fraction, bc.seed)
    (obs, actions), (val_obs, val_actions) = stacked(episodes, train_names), stacked(episodes,
                                                                                     val_names)
    if prepare is not None:
        obs, val_obs = prepare(obs), prepare(val_obs)
    action_dim = actions.shape[1]
    params = init_params(cfg, {k: v[0] for k, v in obs.items()}, action_dim, bc.seed)
    obs, val_obs = feature_observations(obs, cfg), feature_observations(val_obs, cfg)
    learner = BCLearner.create(params, cfg, action_dim, bc)
    data = jax.device_put({"observations": obs, "actions": actions})
    rng, info = np.random.default_rng(bc.seed), {}
    for step in range(bc.steps):
        rows = jnp.asarray(rng.integers(0, len(actions), bc.batch_size), jnp.int32)
        learner, info = learner.update(data, rows)
        if log and (step + 1) % max(1, bc.steps // 5) == 0:
            log(f"step {step + 1}/{bc.steps}: " + ", ".join(
                f"{k} {float(v):.4f}" for k, v in info.items()))
    params = jax.device_get(learner.state.params)
    evaluate, gripper = policy_function(cfg, action_dim), cfg.grasp_critic
    sample = np.random.default_rng(bc.seed).permutation(len(actions))[:4096]
    report = {
        "validation": action_errors(predict(evaluate, params, val_obs), val_actions, gripper),
        "validation_baseline": baseline_errors(actions, val_actions, gripper),
        "train": action_errors(predict(evaluate, params, {k: v[sample] for k, v in obs.items()}),
                               actions[sample], gripper),
        "train_episodes": train_names, "validation_episodes": val_names,
        "train_transitions": len(actions), "validation_transitions": len(val_actions),
        "steps": bc.steps, "final_loss": float(info.get("loss", np.nan)),
        "train_seconds": round(time.monotonic() - start, 1),
    }
    return params, report
