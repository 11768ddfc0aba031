"""The ZeroMQ transport on loopback: actor -> learner transitions per second (two 128x128 JPEG
frames + 19-D state), durable (the learner appends each batch to a real `ReplayStorage`, fsynced,
before acknowledging) and not (acknowledged on receipt); the actor process's CPU time per transition
(all its threads: encoding, spool, sending); and publish-to-applied latency of resnet10-sized policy
weights (~5M float32) with their bytes on the wire.

The learner runs in a child process. Prints one JSON line. Run: `.venv/bin/python
bench/transport.py`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np
from header import cpus, machine

CAMERAS = ("front", "wrist")


def make_spec():
    from serl.data import TransitionSpec

    obs = {"state": ((19,), np.float32), **{c: ((128, 128, 3), np.uint8) for c in CAMERAS}}
    return TransitionSpec(obs, 7)


def resnet10_sized_params() -> dict:
    """A tree shaped like a ResNet-10 trunk (GroupNorm) plus pooling and MLP head: about
    5M float32."""
    rng = np.random.default_rng(0)
    shapes = {"stem": {"kernel": (7, 7, 3, 64), "scale": (64,), "bias": (64,)}}
    c_in = 64
    for stage, c in enumerate((64, 128, 256, 512)):
        block = {"conv1": (3, 3, c_in, c), "norm1_scale": (c,), "norm1_bias": (c,),
                 "conv2": (3, 3, c, c), "norm2_scale": (c,), "norm2_bias": (c,)}
        if c_in != c:
            block["proj"] = (1, 1, c_in, c)
        shapes[f"stage{stage}"] = block
        c_in = c
    shapes["pool"] = {"embedding": (4, 4, 512, 8), "bottleneck": (8 * 512, 64), "norm": (64,)}
    shapes["head"] = {"dense0": (2 * 64 + 19, 256), "dense1": (256, 256), "mean": (256, 7),
                      "log_std": (256, 7)}

    def build(tree):
        return {k: build(v) if isinstance(v, dict) else rng.standard_normal(v).astype(np.float32)
                for k, v in tree.items()}
    return build(shapes)


def frames(n: int) -> list[np.ndarray]:
    """Camera-like frames: smooth gradients, a moving block, mild noise (JPEG sizes like real
    scenes)."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:128, 0:128]
    out = []
    for i in range(n):
        image = np.stack([(x + i) % 256, (y * 2) % 256, (x + y + 3 * i) % 256],
                         -1).astype(np.float32)
        image[40 + i % 40:70 + i % 40, 30:60] = (200, 40, 40)
        image += rng.normal(0, 6, image.shape)
        out.append(np.clip(image, 0, 255).astype(np.uint8))
    return out


def transitions(n: int) -> list[dict]:
    pool = frames(64)
    obs = [{"state": np.full(19, i, np.float32), "front": pool[i % 64], "wrist": pool[(i + 7) % 64]}
           for i in range(n + 1)]
    return [{"observations": obs[i], "next_observations": obs[i + 1],
             "actions": np.zeros(7, np.float32), "rewards": np.float32(0), "masks": np.float32(1),
             "dones": np.bool_(False), "intervened": np.bool_(False),
             "grasp_penalty": np.float32(0), "episode_id": np.int64(0), "step": np.int32(i),
             "policy_version": np.zeros(2, np.int64), "classifier_version": np.int32(0),
             "timestamp": np.float64(i)} for i in range(n)]


def learner_process(durable: bool, versions: int, out: mp.Queue, stop) -> None:
    """Serve one actor: store (or not) and acknowledge; then publish `versions` weights, reporting
    their times."""
    from serl.data import ReplayStorage
    from serl.transport.interfaces import WeightsVersion
    from serl.transport.messages import spec_info
    from serl.transport.zmq_learner import ZmqLearnerTransport

    spec = make_spec()
    learner = ZmqLearnerTransport(spec, spec_info(spec))
    out.put((learner.data_port, learner.weights_port))
    with tempfile.TemporaryDirectory() as folder:
        storage = ReplayStorage(Path(folder) / "online", spec, 100_000) if durable else None
        while not stop.is_set():
            for batch in learner.receive(64, 0.05):
                if storage is not None:
                    storage.append(batch.transitions, batch.actor_id, batch.first_sequence,
                                   on_invalid="drop")
                learner.acknowledge(batch.actor_id, batch.last_sequence)
        if storage is not None:
            storage.close()
    params, published = resnet10_sized_params(), []
    for step in range(versions):
        # the clock is system-wide: comparable with the actor process's
        published.append(time.monotonic())
        learner.publish(WeightsVersion(0, step), params)
        time.sleep(0.3)
    out.put((published, len(learner._weights_message or b"")))
    time.sleep(1.0)
    learner.close()


def run(durable: bool, n: int, versions: int, folder: Path) -> dict:
    from serl.transport.frames import FrameCodec
    from serl.transport.messages import spec_info
    from serl.transport.zmq_actor import ZmqActorTransport

    spec, data = make_spec(), transitions(n)
    ctx = mp.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=learner_process, args=(durable, versions, out, stop))
    child.start()
    ports = out.get(timeout=120)
    template = resnet10_sized_params() if versions else None
    actor = ZmqActorTransport("127.0.0.1", *ports, "bench", spec, spec_info(spec),
                              folder / f"spool-{durable}", template_params=template,
                              frames=FrameCodec(90))
    adder, result = actor.adder(), {}
    try:
        adder.add(data[0])  # connect and warm up before timing
        assert adder.flush(60), "no acknowledgement from the learner"
        adds = np.empty(n - 1)
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(1, n):
            start = time.perf_counter()
            adder.add(data[i])
            adds[i - 1] = time.perf_counter() - start
        assert adder.flush(300)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        result.update(per_s=(n - 1) / wall, cpu_ms=1e3 * cpu / (n - 1),
                      add_p99_ms=1e3 * np.percentile(adds, 99),
                      bytes_per_transition=np.mean([len(actor.codec.encode(t))
                                                    for t in data[:100]]))
        stop.set()
        if versions:
            result.update(weights_latency(actor, versions, out))
    finally:
        stop.set()
        actor.close()
        child.join(timeout=60)
    return result


def weights_latency(actor, versions: int, out: mp.Queue) -> dict:
    client, applied = actor.variable_client(), {}
    deadline = time.monotonic() + 0.3 * versions + 30
    while len(applied) < versions and time.monotonic() < deadline:
        got = client.poll()
        if got is not None:
            applied[got[0].step] = time.monotonic()
        time.sleep(0.001)
    published, wire_bytes = out.get(timeout=60)
    latency = np.array([applied[s] - published[s] for s in applied])
    return {"weights_p50_ms": 1e3 * np.percentile(latency, 50),
            "weights_p99_ms": 1e3 * np.percentile(latency, 99), "weights_applied": len(applied),
            "weights_wire_bytes": wire_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transitions", type=int, default=3000)
    parser.add_argument("--versions", type=int, default=20, help="weight publications timed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        plain = run(False, args.transitions, args.versions, Path(folder))
        durable = run(True, args.transitions, 0, Path(folder))
    n_params = sum(a.size for group in resnet10_sized_params().values() for a in group.values())
    print(json.dumps({
        "bench": "transport", "transitions": args.transitions,
        "frames": "2x128x128 JPEG q90 + 19-D state",
        "transitions_per_s_durable": round(durable["per_s"]),
        "transitions_per_s_acked_on_receipt": round(plain["per_s"]),
        "target_transitions_per_s_durable": 1000, "aim_transitions_per_s_durable": 2000,
        "actor_cpu_ms_per_transition": round(durable["cpu_ms"], 3),
        "actor_cpu_ms_per_transition_acked_on_receipt": round(plain["cpu_ms"], 3),
        "target_actor_cpu_ms_per_transition": 1.0,
        "add_p99_ms": round(durable["add_p99_ms"], 3),
        "wire_bytes_per_transition": round(durable["bytes_per_transition"]),
        "policy_params": int(n_params), "weights_wire_bytes": plain["weights_wire_bytes"],
        "weights_publish_to_applied_p50_ms": round(plain["weights_p50_ms"], 1),
        "weights_publish_to_applied_p99_ms": round(plain["weights_p99_ms"], 1),
        "weights_versions_applied": f"{plain['weights_applied']}/{args.versions}",
        "target_weights_p99_ms": 1000, "aim_weights_p99_ms": 150,
        "cores": cpus(), "machine": machine(),
    }))


if __name__ == "__main__":
    main()
