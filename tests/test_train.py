"""`serl train` through its real entry point, in a subprocess, with a tiny budget."""

import dataclasses
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from serl.networks.config import EncoderConfig

TINY = [
    "--learner.min-online",
    "40",
    "--learner.min-demo",
    "10",
    "--learner.publish-every",
    "5",
    "--agent.batch-size",
    "16",
    "--agent.hidden-dims",
    "32",
    "32",
    "--actor.max-steps-per-update",
    "3",
    "--actor.free-steps",
    "40",
    "--operator.takeover-prob",
    "0.1",
    "--env.max-episode-steps",
    "30",
]


def stored_origins(run, buffer="online"):
    from serl.data import ReplayStorage, TransitionSpec

    spec = TransitionSpec.from_json(
        json.loads((run / "buffers" / buffer / "storage.json").read_text())["spec"]
    )
    with ReplayStorage(run / "buffers" / buffer, spec, capacity=10**6) as storage:
        return storage.origins(range(len(storage)))


def train(tmp_path, *extra):
    cmd = [
        sys.executable,
        "-m",
        "serl.cli",
        "train",
        "sim_pick_cube_state",
        "--single-process",
        "--runs-dir",
        str(tmp_path),
        "--demos-dir",
        str(tmp_path / "demos"),
        "--demo-episodes",
        "2",
        *TINY,
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240)


@pytest.mark.timeout(300)
def test_single_process_train_then_resume(tmp_path):
    out = train(tmp_path, "--learner.max-updates", "20")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "trained 20 updates" in out.stdout
    assert (
        "recording 2 with the scripted operator" in out.stdout
        and len(list((tmp_path / "demos").glob("*.npz"))) == 2
    )
    run = tmp_path / "sim_pick_cube_state"
    progress = json.loads((run / "learner_progress.json").read_text())
    assert progress == {"updates": 20, "incarnation": 0}
    assert (run / "checkpoints" / "20").is_dir()
    actor_state = json.loads((run / "actor" / "actor-0.json").read_text())
    assert actor_state["episodes"] >= 1
    first = stored_origins(run)
    assert first == [("actor-0", s) for s in range(len(first))]
    demo_files = [o for o in stored_origins(run, "demo") if o[0].startswith("demo:")]
    assert len({name for name, _ in demo_files}) == 2  # both recorded demonstrations were loaded
    refused = train(tmp_path, "--learner.max-updates", "20")
    assert refused.returncode != 0 and "--resume" in refused.stderr
    resumed = train(tmp_path, "--learner.max-updates", "30", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "trained 30 updates" in resumed.stdout
    assert json.loads((run / "learner_progress.json").read_text()) == {
        "updates": 30,
        "incarnation": 1,
    }
    # The resumed actor continues its sequence: new transitions are stored, none mistaken for
    # duplicates.
    second = stored_origins(run)
    assert len(second) > len(first) and second == [("actor-0", s) for s in range(len(second))]
    assert [
        o for o in stored_origins(run, "demo") if o[0].startswith("demo:")
    ] == demo_files  # not loaded twice
    assert (
        json.loads((run / "actor" / "actor-0.json").read_text())["episodes"]
        > actor_state["episodes"]
    )
    evaluated = subprocess.run(
        [sys.executable, "-m", "serl.cli", "eval", str(run), "--episodes", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "checkpoint at update 30" in evaluated.stdout and "/2 (" in evaluated.stdout
    assert sorted(p.name for p in (run / "eval").glob("*.mp4")) == [
        "episode_0000.mp4",
        "episode_0001.mp4",
    ]


def history(run):
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


@pytest.mark.timeout(400)
def test_two_process_train_smoke_then_resume(tmp_path):
    """The default `serl train`: learner and actor as two processes over loopback ZeroMQ; the
    actor's step budget ends the run (the learner then drains what arrived, checkpoints and
    stops)."""
    every = ["--actor.eval-every-episodes", "2", "--actor.eval-episodes", "1", "--run", "smoke"]
    cmd = [
        sys.executable,
        "-m",
        "serl.cli",
        "train",
        "sim_pick_cube_state",
        "--runs-dir",
        str(tmp_path),
        "--demos-dir",
        str(tmp_path / "demos"),
        "--demo-episodes",
        "2",
        *TINY,
        *every,
    ]
    out = subprocess.run(
        [*cmd, "--actor.max-env-steps", "150"], capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "smoke"
    progress = json.loads((run / "learner_progress.json").read_text())
    assert progress["updates"] > 0 and progress["incarnation"] == 0
    arrived = stored_origins(run)
    assert len(arrived) == 150 and arrived == [("actor-0", s) for s in range(150)]
    versions = [r["policy_step"] for r in history(run) if "eval_success" not in r]
    assert (
        versions[-1] > versions[0] >= 0
    )  # the actor took newer weights as the learner published them
    assert (run / "curve.png").stat().st_size > 0 and (
        run / "checkpoints" / str(progress["updates"])
    ).is_dir()
    assert list((run / "videos").glob("eval_*.mp4"))
    assert (
        "checkpoint:" in out.stdout and "curve.png" in out.stdout and "serl eval" in out.stdout
    )  # the summary
    resumed = subprocess.run(
        [*cmd, "--actor.max-env-steps", "240", "--resume"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = json.loads((run / "learner_progress.json").read_text())
    assert again["updates"] > progress["updates"] and again["incarnation"] == 1
    assert stored_origins(run) == [
        ("actor-0", s) for s in range(240)
    ]  # continued, nothing repeated or lost
    steps = [r["env_steps"] for r in history(run) if "eval_success" not in r]
    assert steps == sorted(steps) and steps[-1] == 240


class Recording(gym.Wrapper):
    """The policy env, keeping every observation its steps return (lossless, as the env made
    them)."""

    def __init__(self, env):
        super().__init__(env)
        self.controls, self.stepped = env.controls, []

    def step(self, action):
        out = super().step(action)
        self.stepped.append(out[0])
        return out


@pytest.mark.timeout(240)
def test_single_process_stores_the_frames_two_processes_would_decode(tmp_path):
    """Both modes train on the wire codec's frames: a single-process run stores each camera frame
    as `FrameCodec.roundtrip` of the env's frame (what a ZeroMQ learner decodes), not the lossless
    one."""
    import experiments
    from serl.commands.runtime import build_env
    from serl.commands.train import run_single_process
    from serl.data import ReplayStorage
    from serl.learner.build import learner_spec
    from serl.transport.codec import FrameCodec

    base = experiments.load("sim_pick_cube")
    config = dataclasses.replace(
        base,
        env=dataclasses.replace(base.env, image_size=32, max_episode_steps=10),
        # the policy reads the state only: the frames under test are the stored ones
        agent=dataclasses.replace(base.agent, encoder=EncoderConfig(), hidden_dims=(16,),
                                  batch_size=8),
        learner=dataclasses.replace(base.learner, min_online=8, min_demo=4, max_updates=None,
                                    max_minutes=None, target_eval_success=None),
        actor=dataclasses.replace(base.actor, max_env_steps=20, max_steps_per_update=None,
                                  eval_every_episodes=0),
        demos_dir=str(tmp_path / "no-demos"), demo_episodes=0,
    )
    envs = []
    run = tmp_path / "run"
    run.mkdir()
    # built on the actor's thread (where its renderer works)
    summary = run_single_process(config, run, resume=False,
                                 make_env=lambda: envs.append(Recording(build_env(config)))
                                 or envs[0])
    (env,) = envs
    assert summary["env_steps"] == len(env.stepped) >= 20
    codec = FrameCodec(config.transport.jpeg_quality)
    with ReplayStorage(run / "buffers" / "online", learner_spec(config), capacity=10**6) as online:
        stored = online.get(np.arange(len(online)))["next_observations"]
    assert len(stored["front"]) == len(env.stepped)
    for camera in ("front", "wrist"):
        lossless = np.stack([obs[camera] for obs in env.stepped])
        decoded = np.stack([codec.roundtrip(frame) for frame in lossless])
        np.testing.assert_array_equal(stored[camera], decoded)
        assert not np.array_equal(stored[camera], lossless)
