"""The whole learner loop, timed by its own clock (`serl.learner.timing`): a real `Learner` (replay
storage on disk with the frozen-trunk feature cache, prefetch, the update, publishing, checkpoints,
TensorBoard, the progress line) fed by a stand-in actor thread at a fixed rate through the
in-process transport. Reports the share of wall time outside `update` with its parts, the loop's
updates per second, and beside them the bare update rate of the same compiled update on a batch
from the same buffers.

Publishing encodes the weights for the wire (`encode_params`), as the ZeroMQ learner does on its
loop thread; intake is the in-process transport's (no JPEG decoding: that is the transport's
figure, `bench/transport.py`). Used by `bench/learner.py --loop-seconds`."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

CAMERAS, CAMERA, STATE_DIM, ACTION_DIM, EPISODE = ("front", "wrist"), 128, 19, 7, 100


class EncodingPublisher:
    """A `WeightsPublisher` that encodes each publication for the wire before handing it on."""

    def __init__(self, inner):
        self.inner, self.wire_bytes = inner, 0

    def publish(self, version, params) -> None:
        from serl.transport.params_codec import encode_params

        self.wire_bytes = len(encode_params(params))
        self.inner.publish(version, params)


def spaces():
    from gymnasium import spaces as gs

    frames = gs.Box(0, 255, (CAMERA, CAMERA, 3), np.uint8)
    observation = gs.Dict({"state": gs.Box(-1, 1, (STATE_DIM,), np.float32),
                           **{cam: frames for cam in CAMERAS}})
    return observation, gs.Box(-1, 1, (ACTION_DIM,), np.float32)


class StandInActor:
    """Random episodes of EPISODE steps (each observation is the previous step's next one), every
    fifth step an intervention, added at `hz` (0: as fast as possible)."""

    def __init__(self, transport, seed: int):
        self.adder, self.rng = transport.adder("bench"), np.random.default_rng(seed)
        self.added, self.stop = 0, threading.Event()
        self._obs, self._episode = self._observation(), 0

    def _observation(self) -> dict:
        return {"state": self.rng.uniform(-1, 1, STATE_DIM).astype(np.float32),
                **{cam: self.rng.integers(0, 256, (CAMERA, CAMERA, 3), dtype=np.uint8)
                   for cam in CAMERAS}}

    def add(self, n: int, hz: float = 0.0) -> None:
        start = time.perf_counter()
        for i in range(n):
            if self.stop.is_set():
                return
            if hz > 0:
                time.sleep(max(0.0, start + i / hz - time.perf_counter()))
            step = self.added % EPISODE
            nxt = self._observation()
            self.adder.add({
                "observations": self._obs, "next_observations": nxt,
                "actions": self.rng.uniform(-1, 1, ACTION_DIM).astype(np.float32),
                "rewards": np.float32(step == EPISODE - 1), "masks": np.float32(1.0),
                "dones": np.bool_(step == EPISODE - 1), "intervened": np.bool_(step % 5 == 0),
                "grasp_penalty": np.float32(0.0), "episode_id": np.int64(self._episode),
                "step": np.int32(step), "policy_version": np.zeros(2, np.int64),
                "classifier_version": np.int32(0), "timestamp": np.float64(time.time())})
            self.added += 1
            self._obs = self._observation() if step == EPISODE - 1 else nxt
            self._episode += step == EPISODE - 1


def run_loop(args) -> dict:
    """Runs in its own process (`bench/learner.py --loop-worker`)."""
    import jax

    from serl.agents.config import SACConfig
    from serl.agents.sharding import shard_batch
    from serl.learner.config import LearnerConfig
    from serl.learner.loop import Learner
    from serl.learner.training import sample_update_batch
    from serl.networks.config import EncoderConfig
    from serl.transport.inprocess import InProcessTransport

    encoder = EncoderConfig(image_keys=CAMERAS, trunk="resnet10", frozen_trunk=True,
                            random_frozen_trunk=True, feature_cache=True)
    agent_cfg = SACConfig(encoder=encoder, critic_ensemble_size=2, critic_actor_ratio=2,
                          batch_size=args.loop_batch, grasp_critic=True, augment_pad=0)
    cfg = LearnerConfig(min_online=args.loop_prefill, min_demo=min(50, args.loop_prefill // 5),
                        progress_every_s=10.0)
    transport = InProcessTransport()
    publisher = EncodingPublisher(transport.publisher())
    actor = StandInActor(transport, args.seed)
    observation_space, action_space = spaces()
    with tempfile.TemporaryDirectory() as tmp:
        learner = Learner(agent_cfg, cfg, observation_space, action_space, Path(tmp) / "run",
                          transport.transition_source(), publisher, seed=args.seed)
        # every batch size the cache's trunk pass compiles for, before anything is timed
        feature_fn = learner.training.storage_options["feature_fn"]
        for n in (1 << i for i in range(7)):
            feature_fn({cam: np.zeros((n, CAMERA, CAMERA, 3), np.uint8) for cam in CAMERAS})
        actor.add(args.loop_prefill)  # taken in before the first update, so never timed
        feeder = threading.Thread(target=actor.add, args=(10**9, args.loop_actor_hz),
                                  daemon=True)
        stop, shares = threading.Event(), {}

        def watch() -> None:
            while learner.clock.started is None and not stop.wait(0.05):
                pass  # the first update compiles
            feeder.start()
            stop.wait(args.loop_seconds)
            shares["window"] = learner.clock.window("bench")
            actor.stop.set()
            stop.set()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        learner.run(stop)
        watcher.join()
        window = shares["window"]
        # the bare update: the same compiled function on a batch from the same buffers
        training, rng = learner.training, np.random.default_rng(args.seed)
        batch = shard_batch(sample_update_batch(learner.online, learner.demo, agent_cfg,
                                                cfg.min_demo, rng), training.mesh)
        agent, bare = training.agent, []
        for _ in range(max(1, args.updates)):
            t0 = time.perf_counter()
            agent, info = agent.update(batch, training.trunk)
            jax.block_until_ready(info)
            bare.append(time.perf_counter() - t0)
        training.agent = agent
        learner.close()
    loop_rate = window.updates / window.wall_s
    bare_rate = 1.0 / statistics.median(bare)
    parts = {k: round(v, 4) for k, v in window.shares.items()}
    outside = {k: v for k, v in parts.items() if k != "update"}
    return {
        "inputs": "cached features float16 (the storage's cache), frames cached at insertion",
        "batch_size": args.loop_batch, "prefill_transitions": args.loop_prefill,
        "actor_hz": args.loop_actor_hz, "transitions_added": actor.added,
        "window_s": round(window.wall_s, 1), "updates": window.updates,
        "loop_updates_per_s": round(loop_rate, 3), "bare_updates_per_s": round(bare_rate, 3),
        "loop_vs_bare": round(loop_rate / bare_rate, 3),
        "outside_update_fraction": round(window.outside_update, 4),
        "meets_15_percent": window.outside_update <= 0.15,
        "shares": parts, "dominant_outside_update": max(outside, key=outside.get),
        "nested_shares": {k: round(v, 4) for k, v in window.nested.items()},
        "in_loop_update_s_mean": round(window.shares["update"] * window.wall_s
                                       / max(1, window.updates), 4),
        "published_weights_wire_bytes": publisher.wire_bytes,
    }
