"""The success classifier's data side, numpy only: checks that a label set fits the config, the
split into training and validation episodes, balanced batches, and the metrics and threshold rule.

Whole episodes are held out for validation (frames of one episode are near copies of each other, so
a split by frame would grade the classifier on frames it has nearly seen). The threshold is chosen
on validation; see `choose_threshold`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from serl.agents.config import ClassifierConfig


class Labelled(Protocol):
    """What the classifier reads of a label set (`serl.reward.labels.LabelSet` is one)."""

    images: dict[str, np.ndarray]  # camera -> uint8 (N, H, W, 3)
    labels: np.ndarray  # bool (N,): True = success
    episodes: np.ndarray  # int64 (N,): the episode of each frame

    @property
    def positives(self) -> int: ...

    def __len__(self) -> int: ...

    def take(self, rows: np.ndarray) -> Labelled: ...


def check_labels(labels: Labelled, cfg: ClassifierConfig, name: str = "the label set") -> None:
    """ValueError saying what is wrong: a missing camera, a frame size unlike the config's."""
    for key in cfg.image_keys:
        if key not in labels.images:
            raise ValueError(
                f"{name} has no frames of camera {key!r} (it has {sorted(labels.images)}); "
                f"set classifier.image_keys to cameras that were recorded"
            )
        shape = tuple(labels.images[key].shape[1:])
        if len(labels) and shape != tuple(cfg.image_shape):
            raise ValueError(
                f"{name}: camera {key!r} frames are {shape}, the classifier is configured for "
                f"{tuple(cfg.image_shape)}; record labels at the configured size or change "
                "classifier.image_shape"
            )


def check_both_classes(labels: Labelled, what: str = "the label set") -> None:
    positives = labels.positives
    if positives == 0 or positives == len(labels):
        only = "success" if positives else "failure"
        raise ValueError(
            f"{what} has only {only} frames ({len(labels)} frames, one class): a success "
            "classifier needs both success and failure examples; record episodes of the missing "
            "kind"
        )


def split_by_episode(
    episodes: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """(train rows, validation rows): whole episodes go to validation, about `fraction` of them."""
    ids = rng.permutation(np.unique(episodes))
    n_val = min(max(1, round(fraction * len(ids))), len(ids) - 1)
    val = np.isin(episodes, ids[:n_val])
    return np.flatnonzero(~val), np.flatnonzero(val)


def stratified_split(
    labels: Labelled, fraction: float, rng: np.random.Generator, tries: int = 100
) -> tuple[np.ndarray, ...]:
    """A split by episode in which both halves have both classes: episodes with a success frame and
    episodes without are split separately, then joined; with too few of either kind, random splits
    by episode are tried."""
    check_both_classes(labels)
    has_success = [
        e for e in np.unique(labels.episodes) if labels.labels[labels.episodes == e].any()
    ]
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
    raise ValueError(
        f"cannot split the {len(np.unique(labels.episodes))} labelled episodes into training and "
        "validation episodes that both hold success and failure frames; record more episodes"
    )


def _both_classes(labels: Labelled, rows: np.ndarray) -> bool:
    return 0 < int(labels.labels[rows].sum()) < len(rows)


def balanced_rows(labels: np.ndarray, batch: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices: batch/2 success frames and batch/2 failure frames, each drawn with
    replacement."""
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    return np.concatenate([rng.choice(pos, batch // 2), rng.choice(neg, batch // 2)])


# ---------- metrics and threshold ----------
def metrics(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    said = probs >= threshold
    tp, fp = int(np.sum(said & labels)), int(np.sum(said & ~labels))
    negatives, positives = int(np.sum(~labels)), int(np.sum(labels))
    return {
        "accuracy": float(np.mean(said == labels)),
        "precision": tp / max(1, tp + fp),
        "recall": tp / max(1, positives),
        "false_success_rate": fp / max(1, negatives),
        "positives": positives,
        "negatives": negatives,
    }


def f_beta(probs: np.ndarray, labels: np.ndarray, threshold: float, beta: float) -> float:
    m = metrics(probs, labels, threshold)
    p, r = m["precision"], m["recall"]
    return 0.0 if p + r == 0 else (1 + beta**2) * p * r / (beta**2 * p + r)


def choose_threshold(probs: np.ndarray, labels: np.ndarray, cfg: ClassifierConfig) -> float:
    """Criterion: the threshold maximising F-beta on validation frames with beta = `threshold_beta`
    (below 1: a false success, which ends an episode with reward it did not earn, counts more than a
    missed one), at least `min_threshold`. Thresholds between two validation probabilities score
    alike; of the best-scoring range the middle is taken, so frames a little off the validation ones
    do not flip."""
    candidates = np.unique(
        np.concatenate([[cfg.min_threshold], probs[probs >= cfg.min_threshold], [1.0]])
    )
    scores = np.array([f_beta(probs, labels, t, cfg.threshold_beta) for t in candidates])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    # A candidate's score holds for every threshold in (previous candidate, candidate]: the first
    # run of best candidates a..b covers (c[a-1], c[b]].
    a = b = best[0]
    while b + 1 < len(candidates) and b + 1 in best:
        b += 1
    low = candidates[max(a - 1, 0)]
    return float(min((low + candidates[b]) / 2, 1.0 - 1e-6))
