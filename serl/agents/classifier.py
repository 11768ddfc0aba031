"""Binary success classifier for the learned reward: the pixel encoder of the policy (one `small` or `resnet10`
trunk + pooled bottleneck per configured camera) and an MLP head giving a success logit.

Training draws balanced batches (half success, half failure frames), augments with random crops, and holds out
whole episodes for validation (frames of one episode are near copies of each other, so a split by frame would
grade the classifier on frames it has nearly seen). The threshold is chosen on validation; see `choose_threshold`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training.train_state import TrainState

from serl.networks.augment import random_crop
from serl.networks.encoders import TRUNKS, PooledBottleneck
from serl.networks.mlp import MLP
from serl.reward.labels import LabelSet


@dataclass(frozen=True)
class ClassifierConfig:
    image_keys: tuple[str, ...] = ("front", "wrist")  # cameras the classifier looks at
    image_shape: tuple[int, int, int] = (128, 128, 3)  # every labelled frame must have this shape
    trunk: Literal["small", "resnet10"] = "small"  # the pixel encoder (DESIGN.md's fixed architectures)
    bottleneck_dim: int = 256  # per-camera feature size after the pooled bottleneck
    hidden_dims: tuple[int, ...] = (256,)  # MLP head before the success logit
    batch_size: int = 32  # frames per update, half success and half failure
    steps: int = 400  # gradient updates
    learning_rate: float = 3e-4  # Adam
    crop_pad: int = 4  # random-crop augmentation padding in pixels (0: no augmentation)
    validation_fraction: float = 0.2  # share of episodes held out for validation and the threshold
    min_threshold: float = 0.5  # the threshold is never below this
    threshold_beta: float = 0.5  # the threshold maximises validation F-beta (see choose_threshold)
    confirm_steps: int = 3  # success is called after this many consecutive steps at or above the threshold: a
    #                         lift passing through the success height looks like success a step or two early
    seed: int = 0  # initialisation, batches, augmentation and the episode split

    def __post_init__(self) -> None:
        if not self.image_keys:
            raise ValueError("classifier.image_keys is empty: the classifier needs at least one camera")
        if self.batch_size < 2 or self.batch_size % 2:
            raise ValueError(f"classifier.batch_size {self.batch_size} must be even (half positive, half negative)")
        if self.confirm_steps < 1:
            raise ValueError(f"classifier.confirm_steps {self.confirm_steps} must be at least 1")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"classifier.validation_fraction {self.validation_fraction} must be in (0, 1)")


class SuccessClassifier(nn.Module):
    """Frames of each camera -> success logit (batch,)."""

    image_keys: tuple[str, ...]
    trunk: str = "small"
    bottleneck_dim: int = 256
    hidden_dims: tuple[int, ...] = (256,)

    @nn.compact
    def __call__(self, images: dict) -> jnp.ndarray:
        feats = [PooledBottleneck(bottleneck_dim=self.bottleneck_dim, name=f"pool_{k}")(
            TRUNKS[self.trunk](name=f"trunk_{k}")(images[k]).astype(jnp.float32)) for k in self.image_keys]
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
        state = TrainState.create(apply_fn=network(cfg).apply, params=init_params(cfg, init),
                                  tx=optax.adam(cfg.learning_rate))
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
        return self.replace(state=self.state.apply_gradients(grads=grads), rng=rng), {"loss": loss,
                                                                                        "accuracy": accuracy}


def probabilities_fn(cfg: ClassifierConfig):
    """Jitted (params, images batch) -> success probabilities."""
    model = network(cfg)
    return jax.jit(lambda params, images: jax.nn.sigmoid(model.apply({"params": params}, images)))


def predict(params, labels: LabelSet, cfg: ClassifierConfig, batch: int = 64) -> np.ndarray:
    """Success probabilities of every frame of a label set, in fixed-size batches (one compiled shape)."""
    probs_of = probabilities_fn(cfg)
    n = len(labels)
    out = []
    for start in range(0, n, batch):
        rows = np.arange(start, start + batch) % max(n, 1)  # the last batch wraps around; its extras are dropped
        out.append(np.asarray(probs_of(params, {k: labels.images[k][rows] for k in cfg.image_keys})))
    return np.concatenate(out)[:n] if out else np.zeros(0, np.float32)


# ---------- data checks, split, batches (numpy) ----------
def check_labels(labels: LabelSet, cfg: ClassifierConfig, name: str = "the label set") -> None:
    """ValueError saying what is wrong: a missing camera, a frame size unlike the config's."""
    for key in cfg.image_keys:
        if key not in labels.images:
            raise ValueError(f"{name} has no frames of camera {key!r} (it has {sorted(labels.images)}); "
                             f"set classifier.image_keys to cameras that were recorded")
        shape = tuple(labels.images[key].shape[1:])
        if len(labels) and shape != tuple(cfg.image_shape):
            raise ValueError(f"{name}: camera {key!r} frames are {shape}, the classifier is configured for "
                             f"{tuple(cfg.image_shape)}; record labels at the configured size or change "
                             "classifier.image_shape")


def check_both_classes(labels: LabelSet, what: str = "the label set") -> None:
    positives = labels.positives
    if positives == 0 or positives == len(labels):
        only = "success" if positives else "failure"
        raise ValueError(f"{what} has only {only} frames ({len(labels)} frames, one class): a success classifier "
                         "needs both success and failure examples; record episodes of the missing kind")


def split_by_episode(episodes: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(train rows, validation rows): whole episodes go to validation, about `fraction` of them."""
    ids = rng.permutation(np.unique(episodes))
    n_val = min(max(1, round(fraction * len(ids))), len(ids) - 1)
    val = np.isin(episodes, ids[:n_val])
    return np.flatnonzero(~val), np.flatnonzero(val)


def stratified_split(labels: LabelSet, fraction: float, rng: np.random.Generator,
                     tries: int = 100) -> tuple[np.ndarray, ...]:
    """A split by episode in which both halves have both classes: episodes with a success frame and episodes
    without are split separately, then joined; with too few of either kind, random splits by episode are tried."""
    check_both_classes(labels)
    has_success = [e for e in np.unique(labels.episodes) if labels.labels[labels.episodes == e].any()]
    success_ep = np.isin(labels.episodes, has_success)
    parts = [np.flatnonzero(mask) for mask in (success_ep, ~success_ep)]
    if min(len(np.unique(labels.episodes[p])) for p in parts) >= 2:
        halves = [split_by_episode(labels.episodes[p], fraction, rng) for p in parts]
        train = np.sort(np.concatenate([p[t] for p, (t, _) in zip(parts, halves, strict=True)]))
        val = np.sort(np.concatenate([p[v] for p, (_, v) in zip(parts, halves, strict=True)]))
        if _both_classes(labels, train) and _both_classes(labels, val):
            return train, val
    for _ in range(tries):
        train, val = split_by_episode(labels.episodes, fraction, rng)
        if _both_classes(labels, train) and _both_classes(labels, val):
            return train, val
    raise ValueError(f"cannot split the {len(np.unique(labels.episodes))} labelled episodes into training and "
                     "validation episodes that both hold success and failure frames; record more episodes")


def _both_classes(labels: LabelSet, rows: np.ndarray) -> bool:
    return 0 < int(labels.labels[rows].sum()) < len(rows)


def balanced_rows(labels: np.ndarray, batch: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices: batch/2 success frames and batch/2 failure frames, each drawn with replacement."""
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    return np.concatenate([rng.choice(pos, batch // 2), rng.choice(neg, batch // 2)])


# ---------- metrics and threshold ----------
def metrics(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    said = probs >= threshold
    tp, fp = int(np.sum(said & labels)), int(np.sum(said & ~labels))
    negatives, positives = int(np.sum(~labels)), int(np.sum(labels))
    return {"accuracy": float(np.mean(said == labels)), "precision": tp / max(1, tp + fp),
            "recall": tp / max(1, positives), "false_success_rate": fp / max(1, negatives),
            "positives": positives, "negatives": negatives}


def f_beta(probs: np.ndarray, labels: np.ndarray, threshold: float, beta: float) -> float:
    m = metrics(probs, labels, threshold)
    p, r = m["precision"], m["recall"]
    return 0.0 if p + r == 0 else (1 + beta**2) * p * r / (beta**2 * p + r)


def choose_threshold(probs: np.ndarray, labels: np.ndarray, cfg: ClassifierConfig) -> float:
    """Criterion: the threshold maximising F-beta on validation frames with beta = `threshold_beta` (below 1: a
    false success, which ends an episode with reward it did not earn, counts more than a missed one), at least
    `min_threshold`. Thresholds between two validation probabilities score alike; of the best-scoring range the
    middle is taken, so frames a little off the validation ones do not flip."""
    candidates = np.unique(np.concatenate([[cfg.min_threshold], probs[probs >= cfg.min_threshold], [1.0]]))
    scores = np.array([f_beta(probs, labels, t, cfg.threshold_beta) for t in candidates])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    # A candidate's score holds for every threshold in (previous candidate, candidate]: the first run of best
    # candidates a..b covers (c[a-1], c[b]].
    a = b = best[0]
    while b + 1 < len(candidates) and b + 1 in best:
        b += 1
    low = candidates[max(a - 1, 0)]
    return float(min((low + candidates[b]) / 2, 1.0 - 1e-6))


def train(labels: LabelSet, cfg: ClassifierConfig, log=print) -> tuple[dict, dict]:
    """Train on a label set; returns (params, report) where the report holds the validation metrics at the
    chosen threshold, the threshold, and the split and training figures."""
    check_labels(labels, cfg)
    rng = np.random.default_rng(cfg.seed)
    train_rows, val_rows = stratified_split(labels, cfg.validation_fraction, rng)
    train_set, val_set = labels.take(train_rows), labels.take(val_rows)
    agent = ClassifierState.create(cfg)
    info = {}
    for step in range(cfg.steps):
        rows = balanced_rows(train_set.labels, cfg.batch_size, rng)
        agent, info = agent.update({k: train_set.images[k][rows] for k in cfg.image_keys},
                                   jnp.asarray(train_set.labels[rows]))
        if log and (step + 1) % max(1, cfg.steps // 5) == 0:
            log(f"step {step + 1}/{cfg.steps}: loss {float(info['loss']):.4f}, batch accuracy "
                f"{float(info['accuracy']):.3f}")
    params = agent.state.params
    val_probs = predict(params, val_set, cfg)
    threshold = choose_threshold(val_probs, val_set.labels, cfg)
    report = {"threshold": threshold, "validation": metrics(val_probs, val_set.labels, threshold),
              "validation_at_0.5": metrics(val_probs, val_set.labels, 0.5),
              "train_episodes": int(len(np.unique(train_set.episodes))),
              "validation_episodes": int(len(np.unique(val_set.episodes))),
              "train_frames": len(train_set), "final_loss": float(info.get("loss", np.nan))}
    return params, report
