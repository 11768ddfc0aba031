"""The success classifier: it separates a small synthetic set, refuses one-class label sets and
frames of the wrong size, splits by episode, draws balanced batches, and round-trips through a
versioned folder."""

import numpy as np
import pytest

from serl.agents.classifier import predict, train
from serl.agents.classifier_data import balanced_rows, choose_threshold, stratified_split
from serl.agents.config import ClassifierConfig
from serl.reward.labels import LabelSet
from serl.reward.store import ClassifierFolder, latest_version, load_version, save_version

SIZE = 24
CFG = ClassifierConfig(image_keys=("front",), image_shape=(SIZE, SIZE, 3), bottleneck_dim=16,
                       hidden_dims=(16,), batch_size=16, steps=80, learning_rate=1e-3, crop_pad=2)


def synthetic(n_episodes=24, per_episode=6, seed=0) -> LabelSet:
    """Grey noise; success frames show a red square somewhere (so the crop augmentation cannot
    memorise a spot)."""
    rng = np.random.default_rng(seed)
    n = n_episodes * per_episode
    images = rng.integers(60, 120, (n, SIZE, SIZE, 3), dtype=np.uint8)
    episodes = np.repeat(np.arange(n_episodes), per_episode)
    step = np.tile(np.arange(per_episode), n_episodes)
    labels = (episodes % 2 == 0) & (step >= per_episode - 2)  # every other episode ends in success
    for i in np.flatnonzero(labels):
        y, x = rng.integers(2, SIZE - 10, 2)
        images[i, y:y + 8, x:x + 8] = (230, 20, 20)
    return LabelSet({"front": images}, np.zeros((n, 2), np.float32), labels,
                    episodes.astype(np.int64))


@pytest.mark.timeout(120)
def test_training_separates_a_synthetic_set(tmp_path):
    labels = synthetic()
    params, report = train(labels, CFG, log=None)
    val = report["validation"]
    assert val["accuracy"] >= 0.95 and val["false_success_rate"] == 0.0 and val["recall"] >= 0.8
    assert report["validation_episodes"] >= 2 and 0.5 <= report["threshold"] < 1.0
    fresh = synthetic(n_episodes=8, seed=1)  # frames never seen
    probs = predict(params, fresh, CFG)
    assert probs[fresh.labels].min() > probs[~fresh.labels].max()

    path = save_version(tmp_path, params, CFG, report)
    assert path.name == "v0001" and latest_version(tmp_path) == 1
    loaded, meta = load_version(tmp_path)
    assert meta["threshold"] == report["threshold"] and meta["image_shape"] == [SIZE, SIZE, 3]
    np.testing.assert_allclose(predict(loaded, fresh, CFG), probs, rtol=1e-5, atol=1e-6)
    classifier = ClassifierFolder(tmp_path)
    frame = {"front": fresh.images["front"][0], "state": fresh.state[0]}
    assert classifier.version == 1 and classifier(frame) == pytest.approx(probs[0], abs=1e-5)
    with pytest.raises(ValueError, match=r"expects \(24, 24, 3\)"):
        classifier({"front": np.zeros((32, 32, 3), np.uint8)})


@pytest.mark.timeout(60)
@pytest.mark.parametrize("positive", [False, True])
def test_a_single_class_label_set_stops_training(positive):
    labels = synthetic()
    labels.labels[:] = positive
    only = "success" if positive else "failure"
    with pytest.raises(ValueError, match=f"only {only} frames .*one class"):
        train(labels, CFG, log=None)


@pytest.mark.timeout(60)
def test_frames_of_the_wrong_size_stop_training():
    with pytest.raises(ValueError,
                       match=r"'front' frames are \(24, 24, 3\).*configured for \(32, 32, 3\)"):
        train(synthetic(), ClassifierConfig(image_keys=("front",), image_shape=(32, 32, 3)),
              log=None)
    with pytest.raises(ValueError, match="no frames of camera 'wrist'"):
        train(synthetic(),
              ClassifierConfig(image_keys=("front", "wrist"), image_shape=(SIZE, SIZE, 3)),
              log=None)


def test_the_split_is_by_episode_and_both_halves_have_both_classes():
    labels = synthetic(n_episodes=30)
    for seed in range(20):
        train_rows, val_rows = stratified_split(labels, 0.2, np.random.default_rng(seed))
        assert not set(labels.episodes[train_rows]) & set(labels.episodes[val_rows])
        assert len(train_rows) + len(val_rows) == len(labels)
        for rows in (train_rows, val_rows):
            assert 0 < labels.labels[rows].sum() < len(rows)
        assert 4 <= len(np.unique(labels.episodes[val_rows])) <= 8  # about a fifth of 30 episodes


def test_batches_are_half_success_half_failure_and_the_threshold_maximises_f_half_on_validation():
    labels = np.array([True] * 5 + [False] * 95)
    rows = balanced_rows(labels, 32, np.random.default_rng(0))
    assert labels[rows].sum() == 16 and len(rows) == 32
    probs = np.array([0.2, 0.7, 0.95, 0.9, 0.99])
    truth = np.array([False, False, True, True, True])
    threshold = choose_threshold(probs, truth, CFG)
    # midway between the highest failure and the lowest success
    assert threshold == pytest.approx(0.8)
    # Nothing to separate above the minimum: midway between it and the lowest success.
    assert choose_threshold(np.array([0.1, 0.9]), np.array([False, True]),
                            CFG) == pytest.approx(0.7)
    # A confident failure frame (0.99) above every success: no threshold drops it without dropping
    # successes, and F-0.5 prefers keeping all four successes (0.83) to dropping the 0.6 one (0.75).
    probs = np.array([0.1, 0.99, 0.6, 0.97, 0.98, 0.96])
    truth = np.array([False, False, True, True, True, True])
    assert choose_threshold(probs, truth, CFG) == pytest.approx(0.55)
