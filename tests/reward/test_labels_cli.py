"""The labelling workflow from the command line, in simulation: record sim-labelled frames, train
a classifier version, review the frames a classifier called success in a run, and train again with
those hard negatives."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from reward_helpers import ALWAYS, CFG, SMALL, raw_env, save_fixed, zero_action

from serl.cli import main as serl
from serl.envs.stack import PolicyEnvConfig, make_policy_env
from serl.reward.labels import load_label_file, load_label_folder
from serl.reward.positives import REVIEWED, load_positives
from serl.reward.store import ClassifierFolder, load_version

ROOT = Path(__file__).resolve().parents[2]


class SuccessLog(gym.Wrapper):
    """Remembers the simulator's success flag of every frame it passes up, by the frame's bytes."""

    def __init__(self, env):
        super().__init__(env)
        self.seen: dict[bytes, bool] = {}
        self.order: list[tuple[bytes, bool]] = []

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.seen[obs["front"].tobytes()] = bool(info["succeed"])
        self.order.append((obs["front"].tobytes(), bool(info["succeed"])))
        return obs, reward, terminated, truncated, info


@pytest.mark.timeout(120)
def test_sim_labels_are_the_simulators_success_flags():
    import experiments
    from serl.commands.record_labels import sim_env
    from serl.reward.near_miss import NearMissConfig
    from serl.reward.recording import LabelRecordingConfig, record_labels

    config = experiments.load("sim_pick_cube")
    cfg = LabelRecordingConfig(positives=8, negatives=200, positives_per_episode=4,
                               negative_stride=4, near_miss=NearMissConfig(success_share=1.0))
    config = replace(config, env=replace(config.env, image_size=32),
                     reward=replace(config.reward, labels=cfg))
    env, near_miss = sim_env(config, seed=0)
    log = SuccessLog(env)
    labels = record_labels(log, ("front",), "sim", cfg, seed=3, near_miss=near_miss, max_episodes=2,
                           progress=None)
    env.close()
    # at most 4 success frames per episode
    assert labels.positives == 8 and len(np.unique(labels.episodes)) == 2
    # every 4th failure frame, and the 5 before success
    assert 10 <= len(labels) - labels.positives <= 40
    for frame, label in zip(labels.images["front"], labels.labels, strict=True):
        assert log.seen[frame.tobytes()] == label
    # The failure frames just before each success are all kept: they are the hardest to tell apart.
    kept = {frame.tobytes() for frame in labels.images["front"]}
    starts = [i for i in range(1, len(log.order)) if log.order[i][1] and not log.order[i - 1][1]]
    assert starts and all(log.order[i - k][0] in kept for i in starts for k in (1, 2))


@pytest.mark.timeout(240)
def test_record_train_review_and_retrain_from_the_command_line(tmp_path, capsys):
    labels_dir, classifiers = tmp_path / "labels", tmp_path / "classifiers"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "serl.cli", "record-labels", "sim_pick_cube", "--out",
         str(labels_dir), *SMALL, "--reward.labels.positives", "6",
         "--reward.labels.negatives", "12",
         "--reward.labels.positives-per-episode", "3", "--reward.labels.negative-stride", "10"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "saved 18 frames (6 success, 12 failure" in out.stdout
    (recorded,) = labels_dir.glob("*.npz")
    assert load_label_file(recorded).images["front"].shape == (18, 32, 32, 3)

    assert serl(["train-reward", "sim_pick_cube", "--labels", str(labels_dir), "--out",
                 str(classifiers), *SMALL]) == 0
    assert "saved " + str(classifiers / "v0001") in capsys.readouterr().out

    # A run in which a classifier called success on frames
    # where the simulator says the task is not done.
    run = tmp_path / "runs" / "lab1"
    always = tmp_path / "always"
    save_fixed(always, ALWAYS)
    policy_env = make_policy_env(raw_env(steps=3), PolicyEnvConfig(),
                                 classifier=ClassifierFolder(always))
    assert policy_env.controls.set_positives_dir(run / "classifier_positives")
    for seed in range(3):
        policy_env.reset(seed=seed)
        policy_env.step(zero_action())  # called success at once: kept for review
    policy_env.close()
    assert len(load_positives(run / "classifier_positives")[0]) == 3

    assert serl(["record-labels", "sim_pick_cube", "--from-run", str(run), "--all-false", "--out",
                 str(labels_dir), *SMALL]) == 0
    assert "saved 3 hard negatives and 0 confirmed successes" in capsys.readouterr().out
    assert not load_positives(run / "classifier_positives")[0]  # reviewed: not shown again ...
    assert len(list((run / "classifier_positives" / REVIEWED).glob("*.npz"))) == 3  # ... but kept
    (hard,) = [p for p in labels_dir.glob("*.npz") if "hard_negatives" in p.name]
    assert not load_label_file(hard).labels.any()

    assert serl(["train-reward", "sim_pick_cube", "--labels", str(labels_dir), "--out",
                 str(classifiers), *SMALL]) == 0
    printed = capsys.readouterr().out
    assert "21 frames (6 success) from 2 label file(s)" in printed
    _, meta = load_version(classifiers)
    assert meta["version"] == 2 and hard.name in meta["report"]["label_files"]
    json.dumps(meta)


@pytest.mark.timeout(60)
def test_review_by_the_simulators_flag_or_by_asking(tmp_path, monkeypatch, capsys):
    from serl.reward.positives import save_positive

    folder = tmp_path / "run" / "classifier_positives"
    frame = {"state": np.zeros(19, np.float32), "front": np.full((32, 32, 3), 7, np.uint8)}
    for sim in (0, 1, 0):
        save_positive(folder, frame, version=4, prob=0.97, sim_succeed=sim)
    assert serl(["record-labels", "sim_pick_cube", "--from-run", str(tmp_path / "run"), "--mark",
                 "sim", "--out", str(tmp_path / "by_sim"), *SMALL]) == 0
    (path,) = (tmp_path / "by_sim").glob("*.npz")
    assert load_label_file(path).labels.tolist() == [False, True, False]

    for sim in (0, 0, 0):
        save_positive(folder, frame, version=5, prob=0.9, sim_succeed=sim)
    # an unclear answer is asked again; q stops (the third stays)
    answers = iter(["maybe", "y", "n", "q"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    assert serl(["record-labels", "sim_pick_cube", "--from-run", str(tmp_path / "run"), "--out",
                 str(tmp_path / "asked"), *SMALL]) == 0
    (path,) = (tmp_path / "asked").glob("*.npz")
    assert load_label_file(path).labels.tolist() == [True, False]
    assert len(load_positives(folder)[0]) == 1  # not reviewed yet: shown next time
    assert "answer y, n, s or q" in capsys.readouterr().out


@pytest.mark.timeout(60)
def test_train_reward_refuses_one_class_and_wrong_sizes_with_a_message(tmp_path, capsys):
    from serl.reward.labels import LabelSet, save_labels

    n = 6
    frames = LabelSet({"front": np.zeros((n, 32, 32, 3), np.uint8)}, np.zeros((n, 19), np.float32),
                      np.zeros(n, bool), np.arange(n))
    save_labels(tmp_path / "one_class", frames, "sim")
    assert serl(["train-reward", "sim_pick_cube", "--labels", str(tmp_path / "one_class"),
                 *SMALL]) == 1
    assert "only failure frames (6 frames, one class)" in capsys.readouterr().err

    frames.labels[:3] = True
    save_labels(tmp_path / "big", frames, "sim")
    # configured for the default 128x128
    assert serl(["train-reward", "sim_pick_cube", "--labels", str(tmp_path / "big"),
                 "--reward.classifier.image-keys", "front"]) == 1
    err = capsys.readouterr().err
    assert "frames are (32, 32, 3), the classifier is configured for (128, 128, 3)" in err
    assert "labels_sim" in err

    (tmp_path / "big" / "labels_broken.npz").write_bytes(b"PK\x03\x04 truncated")
    sets, problems = load_label_folder(tmp_path / "big")
    assert len(sets) == 1 and len(problems) == 1 and "labels_broken.npz" in problems[0]
    assert CFG.image_shape == (32, 32, 3)
