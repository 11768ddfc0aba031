"""The learner loop with the in-process transport and a real simulated arm feeding it from another
thread."""

import dataclasses
import threading

import gymnasium as gym
import jax
import numpy as np
import pytest

import serl  # noqa: F401
from serl.agents.config import SACConfig
from serl.checkpoints import Checkpointer, LearnerCounters
from serl.devices import ScriptedOperator, ScriptedOperatorConfig
from serl.envs.stack import PolicyEnvConfig, make_policy_env
from serl.learner.config import LearnerConfig
from serl.learner.loop import Learner
from serl.run_dir import RunDirError, prepare_run_dir
from serl.transport.inprocess import InProcessTransport

AGENT = SACConfig(hidden_dims=(32, 32), batch_size=32, grasp_critic=True)
LEARNER = LearnerConfig(
    min_online=64,
    min_demo=16,
    publish_every=10,
    checkpoint_every=25,
    log_every=10,
    max_updates=60,
    buffer_chunk_size=64,
)


def policy_env():
    raw = gym.make("serl/PandaPickCube-v0", image_obs=False, max_episode_steps=30)
    operator = ScriptedOperator(
        raw, ScriptedOperatorConfig(takeover_prob=0.2, takeover_steps=5), seed=0
    )
    return make_policy_env(raw, PolicyEnvConfig(), device=operator)


def produce(transport, actor_id, n, produced, seed=0):
    """A stand-in actor: random policy actions, scripted take-overs, every step added with
    provenance."""
    env, rng = policy_env(), np.random.default_rng(seed)
    adder = transport.adder(actor_id)
    obs, _ = env.reset(seed=seed)
    episode, step = 0, 0
    for _ in range(n):
        action = rng.uniform(-1, 1, 7).astype(np.float32)
        next_obs, reward, terminated, truncated, info = env.step(action)
        executed = info.get("intervene_action", action)
        adder.add(
            {
                "observations": obs,
                "actions": np.asarray(executed, np.float32),
                "rewards": np.float32(reward),
                "masks": np.float32(1.0 - terminated),
                "dones": np.bool_(terminated or truncated),
                "next_observations": next_obs,
                "intervened": np.bool_(info["intervened"]),
                "grasp_penalty": np.float32(info["grasp_penalty"]),
                "episode_id": np.int64(episode),
                "step": np.int32(step),
                "policy_version": np.zeros(2, np.int64),
                "classifier_version": np.int32(0),
                "timestamp": np.float64(0.0),
            }
        )
        produced.append(bool(info["intervened"]))
        step += 1
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
            episode, step = episode + 1, 0
    return env


def make_learner(tmp_path, transport, cfg=LEARNER, resume=False):
    env = policy_env()
    return Learner(
        AGENT,
        cfg,
        env.observation_space,
        env.action_space,
        tmp_path / "run",
        transport.transition_source(),
        transport.publisher(),
        seed=0,
        resume=resume,
    )


@pytest.mark.timeout(180)
def test_learner_trains_publishes_checkpoints_and_resumes(tmp_path, capsys):
    transport = InProcessTransport(max_batch=16)
    produced: list[bool] = []
    actor = threading.Thread(target=produce, args=(transport, "robot-1", 300, produced))
    actor.start()
    learner = make_learner(tmp_path, transport)
    counters = learner.run(threading.Event())
    assert counters.updates == 60 and counters.incarnation == 0
    actor.join()
    while learner.ingest(timeout=0.2):
        pass
    # Every produced transition is in the online buffer exactly once, interventions once more in the
    # demo buffer.
    assert learner.online.origins(np.arange(len(learner.online))) == [
        ("robot-1", s) for s in range(300)
    ]
    interventions = [s for s, hit in enumerate(produced) if hit]
    assert interventions and learner.demo.origins(np.arange(len(learner.demo))) == [
        ("robot-1", s) for s in interventions
    ]
    version, params = transport.variable_client().poll()
    assert (version.incarnation, version.step) == (0, 60)
    assert set(params) == {"encoder", "actor", "grasp"}
    assert list((tmp_path / "run" / "tensorboard" / "learner").glob("events.out.tfevents.*"))
    # where the time went, from the second update (the first one compiles) to the last
    shares = learner.clock.window("test")
    assert shares.updates == 59 and 0 < shares.outside_update < 1
    assert sum(shares.shares.values()) == pytest.approx(1.0)
    assert "| outside update" in capsys.readouterr().out  # in the progress line
    learner.close()

    # Resume: counters continue, a new incarnation, the acknowledged data is not asked for again.
    resumed = make_learner(
        tmp_path, transport, dataclasses.replace(LEARNER, max_updates=80), resume=True
    )
    assert (resumed.counters.updates, resumed.counters.incarnation) == (60, 1)
    assert resumed.counters.watermarks == {"robot-1": 299} and len(resumed.online) == 300
    counters = resumed.run(threading.Event())
    assert (counters.updates, counters.incarnation) == (80, 1)
    version, _ = transport.variable_client().poll()
    assert (version.incarnation, version.step) == (1, 80)
    resumed.close()


@pytest.mark.timeout(60)
def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    from serl.agents.factory import make_agent

    agent = make_agent(AGENT, {"state": np.zeros(5, np.float32)}, 7, seed=3)
    checkpointer = Checkpointer(tmp_path / "ckpt")
    checkpointer.save(agent, LearnerCounters(updates=7, incarnation=2, watermarks={"a": 9}))
    fresh = make_agent(AGENT, {"state": np.zeros(5, np.float32)}, 7, seed=4)
    restored, counters = Checkpointer(tmp_path / "ckpt").restore(fresh)
    assert counters == LearnerCounters(updates=7, incarnation=2, watermarks={"a": 9})
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(agent), jax.tree.leaves(restored), strict=True
    ):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), jax.tree_util.keystr(path)


@pytest.mark.timeout(60)
def test_a_checkpoint_with_the_trunk_inside_is_refused_clearly(tmp_path):
    """Checkpoints written before the frozen trunk left the agent held it under `frozen`."""
    from serl.agents.factory import make_agent
    from serl.learner.bookkeeping import Bookkeeping

    cfg = dataclasses.replace(AGENT, grasp_critic=False)
    agent = make_agent(cfg, {"state": np.zeros(5, np.float32)}, 7, seed=3)
    fields = ("actor", "critic", "target_critic_params", "temperature", "rng", "skipped_updates")
    old = {**{f: getattr(agent, f) for f in fields}, "frozen": {"trunk": {"w": np.ones(3)}}}
    Checkpointer(tmp_path / "run" / "checkpoints").save(old, LearnerCounters(updates=5))
    records = Bookkeeping(tmp_path / "run", LEARNER, "none")
    with pytest.raises(ValueError, match="holds the frozen trunk inside the agent.*new run"):
        records.restore(agent)
    records.close()


@pytest.mark.timeout(60)
def test_a_checkpoint_trained_on_another_trunk_is_refused(tmp_path):
    from serl.agents.factory import make_agent
    from serl.learner.bookkeeping import Bookkeeping

    agent = make_agent(dataclasses.replace(AGENT, grasp_critic=False),
                       {"state": np.zeros(5, np.float32)}, 7, seed=3)
    records = Bookkeeping(tmp_path / "run", LEARNER, "sha256:aaaa")
    records.checkpoint(agent, LearnerCounters(updates=5), dict, lambda *_: None)
    records.close()
    assert Bookkeeping(tmp_path / "run", LEARNER, "sha256:aaaa").restore(agent)[0] is not None
    records = Bookkeeping(tmp_path / "run", LEARNER, "sha256:bbbb")
    with pytest.raises(ValueError, match="another frozen trunk.*sha256:aaaa.*sha256:bbbb"):
        records.restore(agent)
    records.close()


@pytest.mark.timeout(30)
def test_run_folder_is_refused_or_resumed_by_the_rules(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Cfg:
        learner: LearnerConfig = dataclasses.field(default_factory=LearnerConfig)
        agent: SACConfig = dataclasses.field(default_factory=SACConfig)

    run = prepare_run_dir(tmp_path / "run", Cfg(), resume=False)
    (run / "marker").write_text("x")
    with pytest.raises(RunDirError, match="already exists.*--resume"):
        prepare_run_dir(run, Cfg(), resume=False)
    # Budgets and logging may change on resume...
    prepare_run_dir(run, Cfg(learner=LearnerConfig(max_updates=10, log_every=5)), resume=True)
    # ...anything else is refused, naming the field.
    with pytest.raises(RunDirError, match=r"agent\.discount: 0\.97 -> 0\.9"):
        prepare_run_dir(run, Cfg(agent=SACConfig(discount=0.9)), resume=True)
    with pytest.raises(RunDirError, match="does not exist"):
        prepare_run_dir(tmp_path / "other", Cfg(), resume=True)


@pytest.mark.timeout(180)
def test_frozen_trunk_feature_cache(tmp_path):
    """With the cache on, frames are encoded once at insertion, samples carry features instead of
    images, and the encoder's output on cached features matches running the frozen trunk on the
    frames."""
    from serl.actor.episode import transition
    from serl.networks.config import EncoderConfig
    from serl.networks.observation_encoder import encode, trunk_feature_fn

    encoder = EncoderConfig(
        image_keys=("front", "wrist"), frozen_trunk=True, random_frozen_trunk=True,
        feature_cache=True, bottleneck_dim=16
    )
    # the cache drops the frames from samples: a pixel crop could not run (a config error)
    agent_cfg = dataclasses.replace(AGENT, encoder=encoder, batch_size=8, augment_pad=0)
    transport = InProcessTransport(max_batch=16)
    raw = gym.make("serl/PandaPickCube-v0", max_episode_steps=10)
    env = make_policy_env(raw, PolicyEnvConfig(), device=ScriptedOperator(raw, seed=0))
    produced: list[bool] = []

    def produce_images():
        adder, (obs, _), episode, step = transport.adder("cam"), env.reset(seed=0), 0, 0
        for _ in range(40):
            next_obs, reward, terminated, truncated, info = env.step(np.zeros(7, np.float32))
            adder.add(
                transition(
                    obs,
                    np.zeros(7),
                    reward,
                    next_obs,
                    terminated,
                    truncated,
                    info,
                    episode,
                    step,
                    None,
                )
            )
            produced.append(True)
            obs, step = next_obs, step + 1
            if terminated or truncated:
                (obs, _), episode, step = env.reset(), episode + 1, 0

    produce_images()
    learner = Learner(
        agent_cfg,
        LearnerConfig(min_online=16, min_demo=8, max_updates=3, buffer_chunk_size=16),
        env.observation_space,
        env.action_space,
        tmp_path / "run",
        transport.transition_source(),
        transport.publisher(),
    )
    assert learner.run(threading.Event()).updates == 3
    assert learner.online.bytes_on_disk().features > 0
    sample = learner.online.sample(4, np.random.default_rng(0))
    assert "front_features" in sample["observations"] and "front" not in sample["observations"]
    stored = learner.online.get(np.arange(4))["observations"]  # get() still returns the frames
    agent, trunk = learner.agent, learner.training.trunk
    with_frames = encode(agent.sac.critic.params["encoder"], trunk, stored, encoder)
    cached = {"state": stored["state"], **trunk_feature_fn(trunk, encoder)(stored)}
    with_cache = encode(agent.sac.critic.params["encoder"], None, cached, encoder)
    np.testing.assert_allclose(np.asarray(with_frames), np.asarray(with_cache), atol=2e-2)
    learner.close()
    # the cached features are pinned to the trunk that made them: another trunk cannot resume
    other = dataclasses.replace(agent_cfg, encoder=dataclasses.replace(
        encoder, trunk_seed=encoder.trunk_seed + 1))
    with pytest.raises(ValueError, match="features computed by another source.*trunk_seed"):
        Learner(other, LearnerConfig(min_online=16, min_demo=8, buffer_chunk_size=16),
                env.observation_space, env.action_space, tmp_path / "run",
                transport.transition_source(), transport.publisher(), resume=True)


@pytest.mark.timeout(120)
def test_minutes_budget_stops_the_learner(tmp_path):
    import time

    transport = InProcessTransport(max_batch=16)
    produce(transport, "robot-1", 80, [])
    learner = make_learner(
        tmp_path, transport, dataclasses.replace(LEARNER, max_updates=None, max_minutes=0.05)
    )
    start = time.monotonic()
    counters = learner.run(threading.Event())
    assert counters.updates >= 1 and time.monotonic() - start < 60
    learner.close()


@pytest.mark.timeout(150)
def test_the_learner_holds_its_update_to_data_ratio(tmp_path):
    # 80 transitions at most 0.5 updates each: 40 updates, however long the learner runs
    import time

    transport = InProcessTransport(max_batch=16)
    produce(transport, "robot-1", 80, [])
    learner = make_learner(tmp_path, transport, dataclasses.replace(
        LEARNER, max_updates=None, max_updates_per_step=0.5))
    stop = threading.Event()
    runner = threading.Thread(target=learner.run, args=(stop,))
    runner.start()
    deadline = time.monotonic() + 90
    while learner.counters.updates < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)  # ~40 more updates' time on this CPU, were the learner not held
    stop.set()
    runner.join(timeout=30)
    assert len(learner.online) == 80 and learner.counters.updates == 40
    assert learner.clock.window("test").shares["data_wait"] > 0  # held, and reported as such
    learner.close()


LEARNER_ONLY = """
import sys
from serl.commands import learner
code = learner.main(sys.argv[1:])
# the task configs are plain dataclasses (serl.envs.sim.config); anything else of the sim is not
SIM = ("serl.envs.sim.", "serl.envs.stack")
built = sorted(m for m in sys.modules if m.split(".")[0] == "mujoco"
               or (m.startswith(SIM) and m != "serl.envs.sim.config"))
print("exit", code, "built", built)
"""


@pytest.mark.timeout(120)
def test_the_learner_command_builds_no_env(tmp_path):
    """`serl learner` takes its spaces from the env contract: with an env id nothing can build it
    serves, trains and checkpoints, and never imports the simulator or the wrapper stack."""
    import subprocess
    import sys

    from serl.ports import free_ports

    data, weights = free_ports(2)
    argv = ["sim_pick_cube_state", "--env-id", "serl/NoSuchEnv-v0", "--runs-dir", str(tmp_path),
            "--demos-dir", str(tmp_path / "no-demos"), "--learner.max-updates", "0",
            "--agent.hidden-dims", "8", "--transport.data-port", str(data),
            "--transport.weights-port", str(weights)]
    out = subprocess.run([sys.executable, "-c", LEARNER_ONLY, *argv], capture_output=True,
                         text=True, timeout=100)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "exit 0 built []" in out.stdout, out.stdout
    assert (tmp_path / "sim_pick_cube_state" / "checkpoints" / "0").is_dir()
