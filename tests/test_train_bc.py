"""`serl train-bc`: a behaviour-cloned policy from a task's demos, saved as a checked policy file
that `serl eval` runs; BC itself on a dataset it must learn; files of another format, spec, trunk,
or altered or truncated, refused naming what differs."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import experiments
from serl.agents import bc
from serl.agents.bc_config import BCConfig
from serl.agents.policy_file import (
    PolicyFileError,
    check_task,
    identity,
    load_policy,
    save_policy,
)
from serl.envs.policy_config import PolicyEnvConfig

ROOT = Path(__file__).resolve().parents[1]


def serl(*args, timeout=150):
    return subprocess.run([sys.executable, "-m", "serl.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(150)
def test_train_bc_records_demos_trains_evaluates_and_saves(trained):
    out, tmp = trained
    assert "recording 3 with the scripted operator" in out.stdout
    assert "held-out (1 episodes): arm MSE" in out.stdout and "gripper accuracy" in out.stdout
    report = json.loads((tmp / "policy.json").read_text())
    assert report["eval"]["episodes"] == 2 and "evaluation: " in out.stdout
    assert set(report["validation"]) >= {"arm_mse", "arm_mse_per_axis", "gripper_accuracy"}
    assert len(report["validation_episodes"]) == 1 and len(report["train_episodes"]) == 2
    policy = load_policy(tmp / "policy.npz")
    assert policy.identity == report["identity"] and policy.task == "sim_pick_cube_state"
    assert policy.action_dim == 7 and policy.agent.hidden_dims == (32, 32)
    assert policy.header["report"]["eval"] == report["eval"]
    refused = serl("train-bc", "sim_pick_cube_state", "--out", tmp / "policy.npz", timeout=60)
    assert refused.returncode == 2 and "--force" in refused.stderr


@pytest.mark.timeout(60)
def test_loaded_file_acts_as_the_policy_that_was_trained(trained):
    """The held-out error recomputed from the file equals what the training process measured on
    its in-memory weights."""
    from serl.actor.build import actor_spec
    from serl.data.demos import load_demos

    _, tmp = trained
    policy = load_policy(tmp / "policy.npz")
    report = policy.header["report"]
    episodes, problems = load_demos(tmp / "demos", actor_spec(policy.config))
    assert not problems
    obs, actions = bc.stacked(episodes, report["validation_episodes"])
    pred = bc.predict(policy.policy_function(), policy.params, obs)
    again = bc.action_errors(pred, actions, gripper=True)
    assert again["gripper_accuracy"] == report["validation"]["gripper_accuracy"]
    np.testing.assert_allclose(again["arm_mse"], report["validation"]["arm_mse"], rtol=1e-5)


@pytest.mark.timeout(60)
def test_serl_eval_runs_a_policy_file_and_refuses_a_truncated_one(trained):
    _, tmp = trained
    out = serl("eval", tmp / "policy.npz", "--episodes", "1", "--no-video", timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    identity_ = load_policy(tmp / "policy.npz").identity
    assert "success " in out.stdout and f"bc policy {identity_}" in out.stdout
    truncated = tmp / "truncated.npz"
    truncated.write_bytes((tmp / "policy.npz").read_bytes()[:5000])
    out = serl("eval", truncated, timeout=60)
    assert out.returncode == 2 and "not a readable policy file" in out.stderr


def rewrite(src: Path, dst: Path, edit_header=None, edit_arrays=None, reseal=False) -> Path:
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["header"]))
    if edit_header:
        edit_header(header)
    if reseal:  # as a file written on another machine would be: consistent, with its own identity
        header["identity"] = identity(header)
    if edit_arrays:
        edit_arrays(arrays)
    arrays["header"] = np.array(json.dumps(header))
    np.savez(dst, **arrays)
    return dst


def refused(path: Path) -> str:
    with pytest.raises(PolicyFileError) as err:
        load_policy(path)
    return str(err.value)


@pytest.mark.timeout(60)
def test_foreign_or_altered_files_are_refused_naming_what_differs(trained, tmp_path):
    _, tmp = trained
    good = tmp / "policy.npz"
    policy = load_policy(good)
    version = rewrite(good, tmp_path / "v2.npz", lambda h: h.update(format_version=2))
    assert "format version 2, this serl reads version 1" in refused(version)

    def other_spec(header):
        header["observation_spec"]["observations"]["state"][0] = [19]

    message = refused(rewrite(good, tmp_path / "s.npz", other_spec))
    assert "another task spec" in message and "'state' (19,) float32, expected (25,)" in message
    demo = next((tmp / "demos").glob("*.npz"))
    assert "not a serl policy file (format None" in refused(demo)

    def nudge(arrays):
        key = next(k for k in arrays if k.startswith("params/actor"))
        arrays[key] = arrays[key] + np.float32(1e-3)

    assert "weights fingerprint" in refused(rewrite(good, tmp_path / "w.npz", edit_arrays=nudge))
    drop = rewrite(good, tmp_path / "d.npz", edit_arrays=lambda a: a.pop(
        next(k for k in a if k.startswith("params/grasp"))))
    assert "missing params" not in (msg := refused(drop)) and "missing grasp/" in msg
    wider = rewrite(good, tmp_path / "h.npz", lambda h: h["agent"].update(hidden_dims=[64, 64]),
                    reseal=True)
    assert "do not fit the recorded architecture" in refused(wider)
    retitled = rewrite(good, tmp_path / "i.npz", lambda h: h.update(kind="other"))
    assert "the header was altered" in refused(retitled)
    pixels = experiments.load("sim_pick_cube")
    with pytest.raises(PolicyFileError, match="sim_pick_cube: observation 'front' absent, "
                       r"expected \(128, 128, 3\) uint8"):
        check_task(policy, pixels, "sim_pick_cube")
    check_task(policy, experiments.load("sim_pick_cube_state"))
    from serl.commands.train_bc import demonstrations
    from serl.data.demos import UnusableDemos

    (tmp_path / "one").mkdir()
    shutil.copy(next((tmp / "demos").glob("*.npz")), tmp_path / "one")
    one = dataclasses.replace(policy.config, demos_dir=str(tmp_path / "one"))
    with pytest.raises(UnusableDemos, match="1 demonstration.* needs at least 2"):
        demonstrations(one)


@pytest.mark.timeout(60)
def test_a_policy_on_another_frozen_trunk_is_refused(tmp_path):
    config = experiments.load("sim_pick_cube")
    config = dataclasses.replace(config, env=dataclasses.replace(config.env, image_size=32))
    agent = bc.policy_agent_config(config.agent, BCConfig(hidden_dims=(8,)), gripper=True)
    from serl.agents.factory import example_observation
    from serl.envs.contract import policy_spaces

    space, actions = policy_spaces(config.env, config.wrappers)
    params = bc.init_params(agent, example_observation(space), actions.shape[0], seed=0)
    path = tmp_path / "pixels.npz"
    save_policy(path, params, kind="bc", config=config, task="sim_pick_cube", agent=agent,
                report={})
    assert load_policy(path).header["trunk_fingerprint"].startswith("sha256:")
    foreign = rewrite(path, tmp_path / "t.npz",
                      lambda h: h.update(trunk_fingerprint="sha256:0123456789abcdef"),
                      reseal=True)
    assert "trained on the frozen trunk sha256:0123456789abcdef, but trunk_seed 0" in refused(
        foreign)


def learnable_episodes(state_dim: int, arm: int, n_episodes: int, steps: int,
                       used: int = 6) -> dict:
    """Arm actions a smooth function of the state's first `used` entries (the rest are zero), the
    gripper command a thresholded one."""
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(state_dim, arm)) / np.sqrt(used)
    episodes = {}
    for i in range(n_episodes):
        state = np.zeros((steps, state_dim), np.float32)
        state[:, :used] = rng.normal(size=(steps, used))
        grip = np.where(state[:, 0] < -0.5, -1.0, np.where(state[:, 0] > 0.5, 1.0, 0.0))
        actions = np.concatenate([np.tanh(state @ weights), grip[:, None]], 1)
        episodes[f"episode_{i:02d}"] = {"observations": {"state": state},
                                        "actions": actions.astype(np.float32)}
    return episodes


@pytest.mark.timeout(90)
def test_bc_learns_a_learnable_mapping_and_the_file_keeps_it(tmp_path):
    """A 5-D policy (x, y, z, yaw, gripper, as sim_pick_cube_fci's) on a mapping a small MLP can
    fit: low held-out error, far below a constant policy's; saved and loaded, the same actions."""
    config = experiments.load("sim_pick_cube_state")
    config = dataclasses.replace(config, wrappers=PolicyEnvConfig(arm_axes=("x", "y", "z", "yaw")))
    cfg = BCConfig(hidden_dims=(64, 64), steps=600, batch_size=128, learning_rate=1e-3)
    agent = bc.policy_agent_config(config.agent, cfg, gripper=True)
    episodes = learnable_episodes(25, 4, n_episodes=10, steps=60)
    params, report = bc.train(episodes, agent, cfg, log=None)
    val, base = report["validation"], report["validation_baseline"]
    assert len(report["validation_episodes"]) == 2
    assert val["arm_mse"] < 0.01 and val["arm_mse"] < 0.05 * base["arm_mse"], report
    assert val["gripper_accuracy"] > 0.9 > base["gripper_accuracy"], report
    path = tmp_path / "five.npz"
    header = save_policy(path, params, kind="bc", config=config, task="sim_pick_cube_state",
                         agent=agent, report=report)
    policy = load_policy(path)
    assert policy.identity == header["identity"] and policy.action_dim == 5
    obs = {"state": np.random.default_rng(2).normal(size=(32, 25)).astype(np.float32)}
    evaluate = bc.policy_function(agent, 5)
    np.testing.assert_array_equal(np.asarray(policy.policy_function()(policy.params, obs)),
                                  np.asarray(evaluate(params, obs)))
    single = np.asarray(evaluate(params, {"state": obs["state"][0]}))
    assert single.shape == (5,) and single[-1] in (-1.0, 0.0, 1.0)
    with pytest.raises(PolicyFileError, match="action dim 5, expected 7"):
        check_task(policy, experiments.load("sim_pick_cube_state"))
    shutil.copy(path, tmp_path / "copy.npz")
    assert load_policy(tmp_path / "copy.npz").identity == policy.identity


@pytest.mark.timeout(90)
def test_pixel_bc_trains_on_cached_trunk_features_and_acts_on_frames():
    """A frozen trunk's features are computed once per frame for training; the policy function
    then runs the trunk on raw frames, as the actor does, and acts as on the cached features."""
    config = experiments.load("sim_pick_cube")  # its frozen trunk, random from trunk_seed
    encoder = dataclasses.replace(config.agent.encoder, trunk="small")  # compiles faster
    cfg = BCConfig(hidden_dims=(16,), steps=20, batch_size=16)
    agent = bc.policy_agent_config(dataclasses.replace(config.agent, encoder=encoder), cfg, True)
    rng = np.random.default_rng(0)
    episodes = {}
    for i in range(3):
        episodes[f"e{i}"] = {"observations": {
            "state": rng.normal(size=(12, 19)).astype(np.float32),
            **{k: rng.integers(0, 256, (12, 32, 32, 3), np.uint8) for k in ("front", "wrist")}},
            "actions": rng.uniform(-1, 1, (12, 7)).astype(np.float32)}
    params, report = bc.train(episodes, agent, cfg, log=None)
    assert report["train_transitions"] == 24 and report["validation_transitions"] == 12
    obs, _ = bc.stacked(episodes, report["validation_episodes"])
    cached = bc.feature_observations(obs, agent)
    assert set(cached) == {"state", "front_features", "wrist_features"}
    evaluate = bc.policy_function(agent, 7)
    on_frames, on_features = (bc.predict(evaluate, params, o) for o in (obs, cached))
    np.testing.assert_allclose(on_frames[:, :6], on_features[:, :6], atol=2e-2)
    assert np.mean(on_frames[:, 6] == on_features[:, 6]) >= 0.9
