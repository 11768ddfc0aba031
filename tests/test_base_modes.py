"""RL on a BC base policy (`serl train --base-policy FILE`): residual and warm start, end to end
and at the learner, and the policy hold that keeps the first online updates off the base."""

import dataclasses
import json

import numpy as np
import pytest
from test_train_bc import serl

import experiments
from serl.agents.policy_file import load_policy

# ---------- residual RL on the BC base (`--base-policy`) ----------
RESIDUAL_TINY = ["--single-process", "--learner.min-online", "40", "--learner.min-demo", "10",
                 "--learner.publish-every", "5", "--agent.batch-size", "16",
                 "--agent.hidden-dims", "32", "32", "--actor.max-steps-per-update", "3",
                 "--actor.free-steps", "40", "--env.max-episode-steps", "30",
                 "--learner.max-updates", "20", "--dashboard.no-enabled", "--agent.no-grasp-critic"]


@pytest.mark.timeout(180)
def test_residual_training_on_the_bc_base(trained):
    """`serl train --base-policy FILE`: every stored observation and next observation carries the
    base's action for it (online transitions from the actor, demos annotated at load), the policy
    only moves within `residual_scale` of it, the run records the base, and `serl eval` on the
    run rebuilds the base, and `serl export` carries it as `observation.base_action`."""
    from serl.agents.base_policy import FileBasePolicy
    from serl.data import ReplayStorage, TransitionSpec

    _, tmp = trained
    base_file = tmp / "policy.npz"
    out = serl("train", "sim_pick_cube_state", "--runs-dir", tmp / "runs", "--demos-dir",
               tmp / "demos", "--base-policy", base_file, *RESIDUAL_TINY, timeout=170)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp / "runs" / "sim_pick_cube_state"
    recorded = json.loads((run / "config.json").read_text())["config"]
    assert recorded["wrappers"]["base_policy"] == str(base_file)
    assert recorded["agent"]["residual_scale"] == 0.5
    config = experiments.load("sim_pick_cube_state")
    config = dataclasses.replace(
        config, wrappers=dataclasses.replace(config.wrappers, base_policy=str(base_file)),
        agent=dataclasses.replace(config.agent, grasp_critic=False, residual_scale=0.5))
    base = FileBasePolicy(base_file, config)
    for buffer in ("online", "demo"):
        folder = run / "buffers" / buffer
        spec = TransitionSpec.from_json(json.loads((folder / "storage.json").read_text())["spec"])
        with ReplayStorage(folder, spec, capacity=10**6) as storage:
            batch = storage.get(np.arange(len(storage)))
        for field in ("observations", "next_observations"):
            np.testing.assert_allclose(batch[field]["base_action"], base(batch[field]),
                                       atol=1e-5)
        if buffer == "online":
            policy = ~batch["intervened"]
            assert policy.sum() > 10
            moved = np.abs(batch["actions"][policy] - batch["observations"]["base_action"][policy])
            assert moved.max() <= 0.5 + 1e-5
    evaluated = serl("eval", run, "--episodes", "1", timeout=120)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    exported = serl("export", run, tmp / "export", "--format", "lerobot", timeout=120)
    assert exported.returncode == 0, exported.stderr[-3000:]
    import pyarrow.parquet as pq

    info = json.loads((tmp / "export" / "meta" / "info.json").read_text())
    assert info["features"]["observation.base_action"]["shape"] == [7]
    table = pq.read_table(sorted((tmp / "export" / "data").rglob("*.parquet"))[0])
    assert "observation.base_action" in table.column_names


@pytest.mark.timeout(150)
def test_warm_start_training_on_the_bc_base(trained):
    """`serl train --base-policy FILE --base-mode warm-start` as a user runs it: the run records the
    file as its warm start (no base in the observation), logs the critics' pre-training on the
    demos and trains online on the actor's transitions."""
    _, tmp = trained
    base_file = tmp / "policy.npz"
    tiny = [a for a in RESIDUAL_TINY if a != "--agent.no-grasp-critic"]
    out = serl("train", "sim_pick_cube_state", "--runs-dir", tmp / "warm", "--demos-dir",
               tmp / "demos", "--base-policy", base_file, "--base-mode", "warm-start",
               "--learner.warm-start-critic-updates", "5", *tiny, timeout=170)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp / "warm" / "sim_pick_cube_state"
    recorded = json.loads((run / "config.json").read_text())["config"]
    assert recorded["learner"]["warm_start"] == str(base_file)
    assert not recorded["wrappers"]["base_policy"]
    logged = out.stdout + out.stderr
    pretrained = logged.find("warm start: pre-trained the critics for 5 updates")
    assert pretrained >= 0, logged[-3000:]
    progress = json.loads((run / "learner_progress.json").read_text())
    assert progress["updates"] >= 20, progress


def test_a_residual_needs_its_base_and_a_plain_agent(trained):
    """A residual without a base (or a base without a residual) and a residual hybrid agent are
    refused naming the fields; the base's identity (not its path) is in the handshake, and its
    action in the transition spec."""
    from serl.actor.build import actor_spec
    from serl.commands.runtime import handshake_info

    _, tmp = trained
    config = experiments.load("sim_pick_cube_state")
    with pytest.raises(ValueError, match="go together"):
        dataclasses.replace(config, agent=dataclasses.replace(config.agent, grasp_critic=False,
                                                              residual_scale=0.5))
    with pytest.raises(ValueError, match="no-grasp-critic"):
        dataclasses.replace(config.agent, residual_scale=0.5)
    with_base = dataclasses.replace(
        config, wrappers=dataclasses.replace(config.wrappers,
                                             base_policy=str(tmp / "policy.npz")),
        agent=dataclasses.replace(config.agent, grasp_critic=False, residual_scale=0.5))
    info = handshake_info(with_base, actor_spec(with_base), "run")
    assert info["base_policy"] == load_policy(tmp / "policy.npz").identity
    assert ("base_action", (7,), "float32") in actor_spec(with_base).observations
    assert handshake_info(config, actor_spec(config), "run")["base_policy"] == ""
    # the command line's two modes
    import argparse

    from serl.commands.config_args import parse_task_config

    base = str(tmp / "policy.npz")
    _, residual = parse_task_config(argparse.ArgumentParser(), [
        "sim_pick_cube_state", "--base-policy", base, "--agent.no-grasp-critic"])
    assert residual.wrappers.base_policy == base and residual.agent.residual_scale == 0.5
    _, warm = parse_task_config(argparse.ArgumentParser(), [
        "sim_pick_cube_state", "--base-policy", base, "--base-mode", "warm-start"])
    assert warm.learner.warm_start == base and not warm.wrappers.base_policy


@pytest.mark.timeout(120)
def test_warm_start_begins_as_the_base_and_pretrains_only_the_critics(trained, tmp_path):
    """`--base-mode warm-start`: a fresh learner's policy is the file's exactly; the critic
    pre-training on the demos, then held online updates, change the critics and leave the policy
    as it was, until a free update; a file of another layout is refused naming the leaf."""
    import jax

    from serl.agents.policy_file import PolicyFileError
    from serl.learner.build import build_learner, inprocess_learner_side
    from serl.run_dir import prepare_run_dir
    from serl.transport.inprocess import InProcessTransport

    _, tmp = trained
    base = experiments.load("sim_pick_cube_state")
    config = dataclasses.replace(
        base, demos_dir=str(tmp / "demos"),
        agent=dataclasses.replace(base.agent, hidden_dims=(32, 32), batch_size=16),
        learner=dataclasses.replace(base.learner, warm_start=str(tmp / "policy.npz"),
                                    warm_start_critic_updates=5))
    run = prepare_run_dir(tmp_path / "run", config, resume=False)
    learner = build_learner(config, inprocess_learner_side(InProcessTransport()), run, False)
    try:
        policy = load_policy(tmp / "policy.npz").params
        same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(  # noqa: E731
            jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
        assert same(learner.training.policy_params(), policy)
        critics = jax.device_get(learner.agent.sac.critic.params["q"])
        learner.pretrain_critic()
        assert same(learner.training.policy_params(), policy)
        assert not same(jax.device_get(learner.agent.sac.critic.params["q"]), critics)
        # `learner.policy_hold_updates`: held online updates keep the policy, a free one moves it
        rng, demo = np.random.default_rng(0), learner.demo
        for _ in range(2):
            learner.training.update(demo, demo, rng, hold_policy=True)
        assert same(learner.training.policy_params(), policy)
        learner.training.update(demo, demo, rng)
        assert not same(learner.training.policy_params(), policy)
    finally:
        learner.close()
    wider = dataclasses.replace(config, agent=dataclasses.replace(config.agent,
                                                                  hidden_dims=(64, 64)))
    run = prepare_run_dir(tmp_path / "wider", wider, resume=False)
    with pytest.raises(PolicyFileError, match="not this run's layout"):
        build_learner(wider, inprocess_learner_side(InProcessTransport()), run, False)
