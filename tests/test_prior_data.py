"""Unlabelled prior data (issue 16, part 3): a dataset without rewards imported with `serl
import-demos --prior`, rewarded at learner start by the task's reward classifier exactly as the
actor's reward wrapper would reward it, in a third buffer sampled at `learner.prior_fraction` of
each batch; at fraction 0 nothing changes."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import gymnasium as gym
import jax
import numpy as np
import pytest

import experiments
from serl.agents.config import ClassifierConfig, SACConfig
from serl.data import ReplayStorage, TransitionSpec, concatenate, sample_mixed
from serl.data.demos import load_demos
from serl.envs.contract import policy_spaces
from serl.learner.config import LearnerConfig
from serl.learner.loop import Learner
from serl.learner.prior import (
    UNLABELLED,
    PriorDataError,
    PriorSource,
    check_prior,
    default_prior_dir,
)
from serl.learner.training import sample_update_batch
from serl.networks.config import EncoderConfig
from serl.transport.inprocess import InProcessTransport

STEPS, SIZE = 8, 64  # transitions per recorded episode, camera size
# a small trained trunk (no frozen-trunk feature cache): the cheapest agent with both cameras
AGENT = SACConfig(hidden_dims=(16,), batch_size=16, grasp_critic=True,
                  encoder=EncoderConfig(image_keys=("front", "wrist"), bottleneck_dim=8))
TINY = LearnerConfig(min_online=8, min_demo=4, buffer_chunk_size=16)


def task_config(**learner):
    """sim_pick_cube with 64x64 cameras and STEPS-step episodes."""
    base = experiments.load("sim_pick_cube")
    env = dataclasses.replace(base.env, image_size=SIZE, max_episode_steps=STEPS)
    return dataclasses.replace(base, env=env, agent=AGENT,
                               learner=dataclasses.replace(TINY, **learner))


# ---------- sampling ----------
SPEC = TransitionSpec({"state": ((3,), np.float32)}, action_dim=2)


def tagged(path: Path, tag: float, n: int = 12) -> ReplayStorage:
    """A buffer of one n-step episode whose rewards are all `tag` (tells the buffers apart)."""
    storage = ReplayStorage(path, SPEC, 100, 8)
    state = np.arange(3 * (n + 1), dtype=np.float32).reshape(n + 1, 3) + tag
    storage.append({
        "observations": {"state": state[:-1]}, "next_observations": {"state": state[1:]},
        "actions": np.zeros((n, 2), np.float32), "rewards": np.full(n, tag, np.float32),
        "masks": np.ones(n, np.float32), "dones": np.arange(n) == n - 1,
        "intervened": np.zeros(n, bool), "grasp_penalty": np.zeros(n, np.float32),
        "episode_id": np.zeros(n, np.int64), "step": np.arange(n, dtype=np.int32),
        "policy_version": np.zeros((n, 2), np.int64), "classifier_version": np.zeros(n, np.int32),
        "timestamp": np.zeros(n)}, "a", 0)
    return storage


@pytest.fixture
def buffers(tmp_path):
    made = [tagged(tmp_path / name, tag) for name, tag in (("online", 1.0), ("demo", 2.0),
                                                           ("prior", 3.0))]
    yield made
    for storage in made:
        storage.close()


@pytest.mark.timeout(20)
@pytest.mark.parametrize("size, fraction, counts", [
    (256, 0.25, (96, 96, 64)), (32, 0.5, (8, 8, 16)), (7, 0.3, (3, 2, 2)), (16, 0.01, (8, 8, 0)),
    (4, 0.99, (1, 0, 3))])
def test_mixed_batches_take_the_prior_share_exactly(buffers, size, fraction, counts):
    online, demo, prior = buffers
    batch = sample_mixed(online, demo, size, np.random.default_rng(0), prior, fraction)
    expected = np.repeat([1.0, 2.0, 3.0], counts)  # online, then demo, then prior
    np.testing.assert_array_equal(batch["rewards"], expected)
    # the same draws, source by source, from the same rng
    rng, (n_online, n_demo, n_prior) = np.random.default_rng(0), counts
    parts = [online.sample(n_online, rng), demo.sample(n_demo, rng)]
    reference = concatenate(parts + ([prior.sample(n_prior, rng)] if n_prior else []))
    np.testing.assert_array_equal(batch["observations"]["state"],
                                  reference["observations"]["state"])
    # without enough demos: the online share takes the demo half too
    alone = sample_mixed(online, None, size, np.random.default_rng(0), prior, fraction)
    np.testing.assert_array_equal(alone["rewards"], np.repeat([1.0, 3.0], [size - n_prior,
                                                                          n_prior]))


@pytest.mark.timeout(20)
def test_update_batches_take_the_prior_share_once_it_holds_the_minimum(buffers):
    online, demo, prior = buffers
    cfg = SACConfig(batch_size=16, critic_actor_ratio=3)
    batch = sample_update_batch(online, demo, cfg, 4, np.random.default_rng(0), prior, 0.25, 12)
    assert batch["rewards"].shape == (3, 16)
    for row in batch["rewards"]:
        np.testing.assert_array_equal(row, np.repeat([1.0, 2.0, 3.0], [6, 6, 4]))
    # below min_prior (or min_demo), what a learner without the prior buffer samples
    for min_prior, min_demo in ((13, 4), (13, 13)):
        today = sample_update_batch(online, demo, cfg, min_demo, np.random.default_rng(1))
        got = sample_update_batch(online, demo, cfg, min_demo, np.random.default_rng(1), prior,
                                  0.25, min_prior)
        jax.tree.map(np.testing.assert_array_equal, got, today)


@pytest.mark.timeout(20)
def test_fraction_zero_reproduces_todays_batches(buffers):
    online, demo, prior = buffers
    cfg = SACConfig(batch_size=9, critic_actor_ratio=2)
    got = sample_update_batch(online, demo, cfg, 4, np.random.default_rng(5), prior, 0.0, 1)
    # today's recipe, written out: ceil(b/2) online, then the rest demo, per minibatch
    rng = np.random.default_rng(5)
    rows = [concatenate([online.sample(5, rng), demo.sample(4, rng)]) for _ in range(2)]
    for k, row in enumerate(rows):
        for field in ("rewards", "masks", "actions"):
            np.testing.assert_array_equal(got[field][k], row[field])
        np.testing.assert_array_equal(got["observations"]["state"][k],
                                      row["observations"]["state"])
    with pytest.raises(ValueError, match=r"prior_fraction 1.0 must be in \[0, 1\)"):
        LearnerConfig(prior_fraction=1.0)
    with pytest.raises(ValueError, match="prior_fraction -0.1"):
        LearnerConfig(prior_fraction=-0.1)


@pytest.mark.timeout(30)
def test_an_out_of_range_fraction_is_refused_on_the_command_line(capsys):
    from serl.commands.learner import main

    with pytest.raises(SystemExit) as exit_:
        main(["sim_pick_cube", "--learner.prior-fraction", "1.5"])
    assert exit_.value.code == 2
    assert "learner.prior_fraction 1.5 must be in [0, 1)" in capsys.readouterr().err


# ---------- the prior folder, the classifier and the learner ----------
@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory) -> Path:
    """Two real sim_pick_cube episodes exported as a LeRobot dataset, stripped of every reward,
    done and serl.* feature (a teleoperation log), then imported with `--prior`."""
    from serl.commands.import_demos import main as import_main
    from serl.commands.record_demos import record_episode
    from serl.commands.runtime import build_env, transition_spec
    from serl.data import stack
    from serl.data.demos import save_episode
    from serl.datasets.export import export_demos

    root, config = tmp_path_factory.mktemp("prior"), task_config()
    config = dataclasses.replace(config, operator=config.operator.driving())
    env = build_env(config)
    try:
        spec = transition_spec(env)
        for i in range(2):
            save_episode(root / "recorded", stack(record_episode(env, 100 + i, i,
                                                                 threading.Event())[0]), spec)
    finally:
        env.close()
    export_demos(root / "recorded", root / "dataset", config, "pick", progress=lambda _: None)
    info_path = root / "dataset" / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["features"] = {k: v for k, v in info["features"].items()
                        if not k.startswith(("next.", "serl.", "complementary_info."))}
    info_path.write_text(json.dumps(info))
    out = root / "sim_pick_cube-prior"
    overrides = ["--env.image-size", str(SIZE), "--env.max-episode-steps", str(STEPS)]
    assert import_main([str(root / "dataset"), "sim_pick_cube", "--prior", "--demos-dir",
                        str(out), *overrides]) == 0
    # a rewarded import's flags make no sense for prior data: refused
    assert import_main([str(root / "dataset"), "sim_pick_cube", "--prior", "--reward",
                        "success_at_end", "--demos-dir", str(root / "no"), *overrides]) == 2
    assert not (root / "no").exists()
    return out


def judge_probabilities(folder: Path, spec) -> tuple[ClassifierConfig, dict, list[np.ndarray]]:
    """A tiny untrained classifier over both 64x64 cameras, and its probabilities on each prior
    episode's next observations (batched as the learner batches them)."""
    from serl.agents.classifier import init_params, probabilities_fn

    cfg = ClassifierConfig(image_shape=(SIZE, SIZE, 3), bottleneck_dim=8, hidden_dims=(8,),
                           confirm_steps=2, seed=3)
    params, probs = init_params(cfg, jax.random.PRNGKey(3)), probabilities_fn(cfg)
    episodes, _ = load_demos(folder, spec)
    return cfg, params, [np.asarray(probs(params, {k: b["next_observations"][k] for k in
                                                   cfg.image_keys}), np.float64)
                         for b in episodes.values()]


def window_peak(p: np.ndarray, steps: int) -> float:
    """The highest threshold `steps` consecutive probabilities all reach."""
    return max(p[i:i + steps].min() for i in range(len(p) - steps + 1))


def wrapper_labels(classifier, next_observations: dict) -> list[tuple[float, bool]]:
    """(reward, terminated) of each step of an episode replayed through the actor's
    RewardClassifierWrapper with `classifier` (a `ClassifierFolder`, as the actor loads it): the
    labels the learner must give."""
    from serl.envs.reward_wrappers import RewardClassifierWrapper

    class Replay(gym.Env):
        observation_space = gym.spaces.Dict({})
        action_space = gym.spaces.Box(-1, 1, (7,), np.float32)

        def reset(self, **kwargs):
            self.t = 0
            return {}, {}

        def step(self, action):
            obs = {k: v[self.t] for k, v in next_observations.items()}
            self.t += 1
            return obs, 0.0, False, self.t == len(next_observations["state"]), {}

    env, out = RewardClassifierWrapper(Replay(), classifier), []
    env.reset()
    while True:
        _, reward, terminated, truncated, _ = env.step(np.zeros(7, np.float32))
        out.append((reward, terminated))
        if terminated or truncated:
            return out


def make_learner(run: Path, config, resume: bool = False) -> Learner:
    transport = InProcessTransport()
    obs_space, action_space = policy_spaces(config.env, config.wrappers)
    return Learner(config.agent, config.learner, obs_space, action_space, run,
                   transport.transition_source(), transport.publisher(), resume=resume,
                   prior=PriorSource.of(config))


@pytest.mark.timeout(90)
def test_prior_episodes_are_rewarded_by_the_classifier_once(prior_dir, tmp_path):
    from serl.learner.build import learner_spec
    from serl.reward.store import ClassifierFolder, save_version

    config = task_config()
    spec = learner_spec(config)
    episodes, problems = load_demos(prior_dir, spec)
    assert len(episodes) == 2 and not problems
    for batch in episodes.values():  # as imported: reward unknown, recorded as such
        assert (batch["classifier_version"] == UNLABELLED).all() and not batch["rewards"].any()
        assert len(batch["rewards"]) == STEPS + 1  # no final-observation marker: T + 1 frames
    # A threshold between the two episodes' best confirmed windows: one succeeds, one does not.
    cfg, params, probs = judge_probabilities(prior_dir, spec)
    peaks = [window_peak(p, cfg.confirm_steps) for p in probs]
    threshold = float(np.mean(peaks))
    assert min(abs(np.concatenate(probs) - threshold)) > 1e-5, "pick another classifier seed"
    classifiers = tmp_path / "classifiers"
    save_version(classifiers, params, cfg, {"threshold": threshold})

    config = task_config(prior_fraction=0.25, prior_dir=str(prior_dir),
                         min_prior=4)
    config = dataclasses.replace(config, reward=dataclasses.replace(
        config.reward, classifier_dir=str(classifiers)))
    learner = make_learner(tmp_path / "run", config)
    prior = learner.intake.prior
    stored = prior.get(np.arange(len(prior)))
    start, successes, folder = 0, 0, ClassifierFolder(classifiers)
    kept = {name: wrapper_labels(folder, b["next_observations"]) for name, b in episodes.items()}
    for name, batch in episodes.items():
        labels = kept[name]
        n = len(labels)
        assert n <= len(batch["rewards"])
        rows = slice(start, start + n)
        np.testing.assert_array_equal(stored["rewards"][rows], [r for r, _ in labels])
        np.testing.assert_array_equal(stored["masks"][rows], [1.0 - t for _, t in labels])
        np.testing.assert_array_equal(stored["dones"][rows], np.arange(n) == n - 1)
        np.testing.assert_array_equal(stored["classifier_version"][rows], 1)
        np.testing.assert_array_equal(stored["actions"][rows], batch["actions"][:n])
        for key in ("state", "front", "wrist"):
            np.testing.assert_array_equal(stored["next_observations"][key][rows],
                                          batch["next_observations"][key][:n])
        successes += labels[-1][1]
        start += n
    assert start == len(prior) and successes == 1
    assert sorted(prior.watermarks()) == sorted(f"prior:{name}" for name in episodes)
    # the prior folder given as demos adds nothing: placeholder rewards never pass for demos'
    assert learner.load_demos(prior_dir) == 0 and len(learner.demo) == 0
    learner.checkpoint()
    learner.close()

    # a resume appends nothing twice; a file added since is judged and appended alone
    first = next(iter(sorted(prior_dir.glob("*.npz"))))
    copy = prior_dir / ("zz_" + first.name)
    copy.write_bytes(first.read_bytes())
    try:
        resumed = make_learner(tmp_path / "run", config, resume=True)
        assert len(resumed.intake.prior) == start + len(kept[first.stem])
        assert resumed.intake.load_prior(PriorSource.of(config)) == 0
        resumed.close()
    finally:
        copy.unlink()


@pytest.mark.timeout(60)
def test_prior_data_without_a_classifier_is_refused_naming_the_fix(prior_dir, tmp_path):
    from serl.commands.errors import EXIT_CONFIG, known_cause

    config = task_config(prior_fraction=0.25, prior_dir=str(prior_dir))
    with pytest.raises(PriorDataError) as err:
        check_prior(config)
    for fix in ("serl train-reward", "--reward.classifier-dir", "--learner.prior-fraction 0"):
        assert fix in str(err.value)
    assert known_cause(err.value)[1] == EXIT_CONFIG
    with pytest.raises(PriorDataError, match="serl train-reward"):
        make_learner(tmp_path / "run", config)
    assert not (tmp_path / "run").exists()  # refused before anything was opened
    # a classifier folder without a version is no classifier
    empty = dataclasses.replace(config, reward=dataclasses.replace(
        config.reward, classifier_dir=str(tmp_path / "none")))
    with pytest.raises(PriorDataError, match="holds no version"):
        check_prior(empty)
    assert default_prior_dir(task_config()) == Path("demos/sim_pick_cube-prior")
    assert default_prior_dir(config) == prior_dir
    # fraction 0 (the default): no prior buffer, not even its folder, whatever else is set
    learner = make_learner(tmp_path / "zero", task_config(prior_dir=str(prior_dir)))
    assert learner.intake.prior is None
    assert not (tmp_path / "zero" / "buffers" / "prior").exists()
    learner.close()
