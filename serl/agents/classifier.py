"""Binary success classifier for the learned reward: the pixel encoder of the policy (one `small` or
`resnet10` trunk + pooled bottleneck per configured camera) and an MLP head giving a success logit.

Training draws balanced batches (half success, half failure frames), augments with random crops,
holds out whole episodes for validation and picks the threshold there; the data side (checks, the
split, batches, metrics, `choose_threshold`) is `serl.agents.classifier_data`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training.train_state import TrainState

from serl.agents.classifier_data import (
    Labelled,
    balanced_rows,
    check_labels,
    choose_threshold,
    metrics,
    stratified_split,
)
from serl.agents.config import ClassifierConfig
from serl.networks.augment import random_crop
from serl.networks.encoders import TRUNKS, PooledBottleneck
from serl.networks.mlp import MLP


class SuccessClassifier(nn.Module):
    """Frames of each camera -> success logit (batch,)."""

    image_keys: tuple[str, ...]
    trunk: str = "small"
    bottleneck_dim: int = 256
    hidden_dims: tuple[int, ...] = (256,)

    @nn.compact
    def __call__(self, images: dict) -> jnp.ndarray:
        feats = [
            PooledBottleneck(bottleneck_dim=self.bottleneck_dim, name=f"pool_{k}")(
                TRUNKS[self.trunk](name=f"trunk_{k}")(images[k]).astype(jnp.float32)
            )
            for k in self.image_keys
        ]
        x = MLP(self.hidden_dims, activate_final=True)(jnp.concatenate(feats, axis=-1))
        return nn.Dense(1)(x)[..., 0]


def network(cfg: ClassifierConfig) -> SuccessClassifier:
    return SuccessClassifier(cfg.image_keys, cfg.trunk, cfg.bottleneck_dim, cfg.hidden_dims)


def init_params(cfg: ClassifierConfig, rng: jax.Array) -> dict:
    example = {k: jnp.zeros((1, *cfg.image_shape), jnp.uint8) for k in cfg.image_keys}
    return network(cfg).init(rng, example)["params"]


class ClassifierState(struct.PyTreeNode):
    """The train state and rng; `update` is the one jitted step."""

    state: TrainState
    rng: jax.Array
    cfg: ClassifierConfig = struct.field(pytree_node=False)

    @classmethod
    def create(cls, cfg: ClassifierConfig) -> ClassifierState:
        rng, init = jax.random.split(jax.random.PRNGKey(cfg.seed))
        state = TrainState.create(
            apply_fn=network(cfg).apply,
            params=init_params(cfg, init),
            tx=optax.adam(cfg.learning_rate),
        )
        return cls(state=state, rng=rng, cfg=cfg)

    @jax.jit
    def update(self, images: dict, labels: jnp.ndarray) -> tuple[ClassifierState, dict]:
        rng, *crops = jax.random.split(self.rng, len(self.cfg.image_keys) + 1)
        if self.cfg.crop_pad:
            pairs = zip(self.cfg.image_keys, crops, strict=True)
            images = {k: random_crop(images[k], r, self.cfg.crop_pad) for k, r in pairs}
        targets = labels.astype(jnp.float32)

        def loss_fn(params):
            logits = self.state.apply_fn({"params": params}, images)
            loss = optax.sigmoid_binary_cross_entropy(logits, targets).mean()
            return loss, jnp.mean((logits > 0) == (targets > 0.5))

        (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(self.state.params)
        return self.replace(state=self.state.apply_gradients(grads=grads), rng=rng), {
            "loss": loss,
            "accuracy": accuracy,
        }


def probabilities_fn(cfg: ClassifierConfig):
    """Jitted (params, images batch) -> success probabilities."""
    model = network(cfg)
    return jax.jit(lambda params, images: jax.nn.sigmoid(model.apply({"params": params}, images)))


def predict(params, labels: Labelled, cfg: ClassifierConfig, batch: int = 64) -> np.ndarray:
    """Success probabilities of every frame of a label set, in fixed-size batches (one compiled
    shape)."""
    probs_of = probabilities_fn(cfg)
    n = len(labels)
    out = []
    for start in range(0, n, batch):
        # the last batch wraps around; its extras are dropped
        rows = np.arange(start, start + batch) % max(n, 1)
        out.append(
            np.asarray(probs_of(params, {k: labels.images[k][rows] for k in cfg.image_keys}))
        )
    return np.concatenate(out)[:n] if out else np.zeros(0, np.float32)


def train(labels: Labelled, cfg: ClassifierConfig, log=print) -> tuple[dict, dict]:
    """Train on a label set; returns (params, report) where the report holds the validation metrics
    at the chosen threshold, the threshold, and the split and training figures."""
    check_labels(labels, cfg)
    rng = np.random.default_rng(cfg.seed)
    train_rows, val_rows = stratified_split(labels, cfg.validation_fraction, rng)
    train_set, val_set = labels.take(train_rows), labels.take(val_rows)
    agent = ClassifierState.create(cfg)
    info = {}
    for step in range(cfg.steps):
        rows = balanced_rows(train_set.labels, cfg.batch_size, rng)
        agent, info = agent.update(
            {k: train_set.images[k][rows] for k in cfg.image_keys},
            jnp.asarray(train_set.labels[rows]),
        )
        if log and (step + 1) % max(1, cfg.steps // 5) == 0:
            log(
                f"step {step + 1}/{cfg.steps}: loss {float(info['loss']):.4f}, batch accuracy "
                f"{float(info['accuracy']):.3f}"
            )
    params = agent.state.params
    val_probs = predict(params, val_set, cfg)
    threshold = choose_threshold(val_probs, val_set.labels, cfg)
    report = {
        "threshold": threshold,
        "validation": metrics(val_probs, val_set.labels, threshold),
        "validation_at_0.5": metrics(val_probs, val_set.labels, 0.5),
        "train_episodes": int(len(np.unique(train_set.episodes))),
        "validation_episodes": int(len(np.unique(val_set.episodes))),
        "train_frames": len(train_set),
        "final_loss": float(info.get("loss", np.nan)),
    }
    return params, report
