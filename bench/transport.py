"""The ZeroMQ transport on loopback: actor -> learner image transitions per second (two 128x128 JPEG
q90 frames + 19-D state), durable (the learner appends each batch to a real `ReplayStorage`,
fsynced, before acknowledging, as the learner's intake does) and not (acknowledged on receipt);
wire bytes per transition (each frame travels once: a transition's observations refer to its
predecessor's next observations); the actor process's CPU time per transition (all its threads:
encoding, spool, sending), with its one JPEG encode per frame (shared with the policy's view in a
real actor) measured apart; and publish-to-applied latency of ResNet-10-policy-sized weights,
without the frozen trunk (~10 MB: what such a policy publishes now that each side builds its
trunk) and with it (~29 MB, as before).

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
from header import cpus, load_1m, machine

CAMERAS = ("front", "wrist")


def make_spec():
    from serl.data import TransitionSpec

    obs = {"state": ((19,), np.float32), **{c: ((128, 128, 3), np.uint8) for c in CAMERAS}}
    return TransitionSpec(obs, 7)


TODAY_WIRE_BYTES = 20_714  # per transition before each frame travelled once (issue 15)
TRUNK = ("stem", "stage0", "stage1", "stage2", "stage3")


def resnet10_sized_params(trunk: bool = True) -> dict:
    """A tree shaped like a ResNet-10 policy over two cameras: the trunk (GroupNorm, about 4.9M
    float32), then per camera the learned spatial embeddings and the 4096 -> 256 bottleneck, and
    the MLP head. Without the `trunk` (which each side builds itself) about 2.4M float32, close to
    what `policy_params()` of such a policy publishes (10.65 MB)."""
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
    for camera in CAMERAS:
        shapes[f"pool_{camera}"] = {"embedding": (4, 4, 512, 8), "bottleneck": (8 * 512, 256),
                                    "norm": (256,)}
    shapes["head"] = {"dense0": (2 * 256 + 19, 256), "dense1": (256, 256), "mean": (256, 7),
                      "log_std": (256, 7)}

    def build(tree):
        return {k: build(v) if isinstance(v, dict) else rng.standard_normal(v).astype(np.float32)
                for k, v in tree.items()}
    return build({k: v for k, v in shapes.items() if trunk or k not in TRUNK})


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


def learner_process(durable: bool, versions: int, trunk: bool, out: mp.Queue, stop) -> None:
    """Serve one actor: store (or not) and acknowledge; then publish `versions` weights, reporting
    their times."""
    from serl.data import ReplayStorage
    from serl.learner.intake import merged
    from serl.transport.interfaces import WeightsVersion
    from serl.transport.messages import spec_info
    from serl.transport.zmq_learner import ZmqLearnerTransport

    spec = make_spec()
    learner = ZmqLearnerTransport(spec, spec_info(spec))
    out.put((learner.data_port, learner.weights_port))
    with tempfile.TemporaryDirectory() as folder:
        storage = ReplayStorage(Path(folder) / "online", spec, 100_000) if durable else None
        while not stop.is_set():
            # as the learner's intake does: each actor's consecutive batches in one append
            for batch in merged(learner.receive(64, 0.05)):
                if storage is not None:
                    storage.append(batch.transitions, batch.actor_id, batch.first_sequence,
                                   on_invalid="drop")
                learner.acknowledge(batch.actor_id, batch.last_sequence)
        if storage is not None:
            storage.close()
    params, published = resnet10_sized_params(trunk), []
    for step in range(versions):
        # the clock is system-wide: comparable with the actor process's
        published.append(time.monotonic())
        learner.publish(WeightsVersion(0, step), params)
        time.sleep(0.3)
    out.put((published, len(learner._weights_message or b"")))
    time.sleep(1.0)
    learner.close()


def wire_bytes(codec, data: list[dict]) -> float:
    """Mean record size as the actor's adder spools and sends them (references included)."""
    from serl.transport.continuity import Continuity

    continuity, sizes = Continuity(), []
    for sequence, t in enumerate(data):
        sizes.append(len(codec.encode(t, continuity.follows(t, sequence))))
        continuity.remember(t, sequence)
    return float(np.mean(sizes))


def jpeg_ms(data: list[dict]) -> float:
    """CPU ms per transition of JPEG-encoding its new frames (its next observations'), once."""
    from serl.transport.frames import FrameCodec

    codec, start = FrameCodec(90), time.process_time()
    for t in data:
        for camera in CAMERAS:
            codec.encode(t["next_observations"][camera])
    return 1e3 * (time.process_time() - start) / len(data)


def run(durable: bool, n: int, versions: int, folder: Path, trunk: bool = True) -> dict:
    from serl.transport.frames import FrameCodec
    from serl.transport.messages import spec_info
    from serl.transport.zmq_actor import ZmqActorTransport

    spec, data = make_spec(), transitions(n)
    ctx = mp.get_context("spawn")
    out, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=learner_process, args=(durable, versions, trunk, out, stop))
    child.start()
    ports = out.get(timeout=120)
    template = resnet10_sized_params(trunk) if versions else None
    actor = ZmqActorTransport("127.0.0.1", *ports, "bench", spec, spec_info(spec),
                              folder / f"spool-{durable}-{trunk}", template_params=template,
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
                      bytes_per_transition=wire_bytes(actor.codec, data[:200]))
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
        headless = run(False, 200, args.versions, Path(folder), trunk=False)
        durable = run(True, args.transitions, 0, Path(folder))
    jpeg = jpeg_ms(transitions(500))

    def count(tree):
        return sum(count(v) if isinstance(v, dict) else v.size for v in tree.values())
    print(json.dumps({
        "bench": "transport", "transitions": args.transitions,
        "frames": "2x128x128 JPEG q90 + 19-D state",
        "transitions_per_s_durable": round(durable["per_s"]),
        "transitions_per_s_acked_on_receipt": round(plain["per_s"]),
        "target_transitions_per_s_durable": 4000,
        "actor_cpu_ms_per_transition": round(durable["cpu_ms"], 3),
        "actor_cpu_ms_per_transition_acked_on_receipt": round(plain["cpu_ms"], 3),
        # the one encode per frame, which a real actor's policy view needs anyway
        "actor_jpeg_encode_ms_per_transition": round(jpeg, 3),
        "actor_cpu_ms_per_transition_beyond_jpeg": round(durable["cpu_ms"] - jpeg, 3),
        "target_actor_cpu_ms_per_transition": 0.2,
        "add_p99_ms": round(durable["add_p99_ms"], 3),
        "wire_bytes_per_transition": round(durable["bytes_per_transition"]),
        "wire_bytes_vs_today": round(durable["bytes_per_transition"] / TODAY_WIRE_BYTES, 3),
        "target_wire_bytes_per_transition": round(0.55 * TODAY_WIRE_BYTES),
        # the policy as published now (its frozen trunk built by each side)
        "policy_params": count(resnet10_sized_params(trunk=False)),
        "weights_wire_bytes": headless["weights_wire_bytes"],
        "weights_publish_to_applied_p50_ms": round(headless["weights_p50_ms"], 1),
        "weights_publish_to_applied_p99_ms": round(headless["weights_p99_ms"], 1),
        "weights_versions_applied": f"{headless['weights_applied']}/{args.versions}",
        "policy_params_with_trunk": count(resnet10_sized_params()),
        "weights_wire_bytes_with_trunk": plain["weights_wire_bytes"],
        "weights_publish_to_applied_p99_ms_with_trunk": round(plain["weights_p99_ms"], 1),
        "target_weights_p99_ms": 50,
        "cores": cpus(), "machine": machine(), "load_1m": load_1m(2),
    }))


if __name__ == "__main__":
    main()
