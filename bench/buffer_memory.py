"""Replay storage on disk: bytes per transition vs one raw observation, durable append rate, sample
time, RssAnon.

Two 128x128x3 cameras + 19-D float32 state, 7-D actions, episodes of 100 steps, appended in batches
of 32 (each append fsynced). Each capacity is filled exactly, in a fresh child process, so its
RssAnon is its own. Prints one JSON line. Run: `.venv/bin/python bench/buffer_memory.py
[--capacities 2000 20000] [--dir /tmp]`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

import numpy as np
from header import machine

CAMERA, STATE, ACTION, EPISODE, BATCH = 128, 19, 7, 100, 32


def make_spec():
    from serl.data import TransitionSpec

    cam = ((CAMERA, CAMERA, 3), np.uint8)
    return TransitionSpec({"state": ((STATE,), np.float32), "front": cam, "wrist": cam}, ACTION)


class Observations:
    """Distinct observations without generating 100 KB of random bytes each: a random pool, stamped
    with an id."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.pool = rng.integers(0, 256, (16, CAMERA, CAMERA, 3), dtype=np.uint8)
        self.rng = rng

    def __call__(self, uid: int) -> dict[str, np.ndarray]:
        obs = {}
        for i, key in enumerate(("front", "wrist")):
            frame = self.pool[(uid + i) % len(self.pool)].copy()
            frame.reshape(-1)[:8] = np.frombuffer(np.int64(uid).tobytes(), np.uint8)
            obs[key] = frame
        obs["state"] = self.rng.normal(size=STATE).astype(np.float32)
        return obs


def episode(observations: Observations, episode_id: int, first_uid: int) -> list[dict]:
    """EPISODE transitions whose step k observes step k-1's next observation."""
    out, obs = [], observations(first_uid)
    for k in range(EPISODE):
        nxt = observations(first_uid + k + 1)
        out.append({"observations": obs, "next_observations": nxt,
                    "actions": np.zeros(ACTION, np.float32),
                    "rewards": np.float32(k == EPISODE - 1), "masks": np.float32(k < EPISODE - 1),
                    "dones": np.bool_(k == EPISODE - 1), "intervened": np.bool_(False),
                    "grasp_penalty": np.float32(0), "episode_id": np.int64(episode_id),
                    "step": np.int32(k), "policy_version": np.array([0, 0], np.int64),
                    "classifier_version": np.int32(0), "timestamp": np.float64(time.time())})
        obs = nxt
    return out


def rss_anon_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))


def fill(capacity: int, directory: str) -> dict:
    """Fill a fresh storage with exactly `capacity` transitions; time appends and samples; report
    disk and RAM."""
    from serl.data import ReplayStorage

    rng = np.random.default_rng(0)
    observations, append_s = Observations(rng), 0.0
    with (
        tempfile.TemporaryDirectory(dir=directory) as tmp,
        ReplayStorage(tmp, make_spec(), capacity) as storage,
    ):
        while len(storage) < capacity:
            ts = episode(observations, len(storage) // EPISODE, 2 * len(storage))[
                : capacity - len(storage)
            ]
            for i in range(0, len(ts), BATCH):
                start = time.perf_counter()
                storage.append(ts[i : i + BATCH], "bench", len(storage))
                append_s += time.perf_counter() - start
        sample_ms = []
        for _ in range(30):
            start = time.perf_counter()
            storage.sample(256, rng)
            sample_ms.append(1000 * (time.perf_counter() - start))
        usage = storage.bytes_on_disk()
        return {
            "transitions": len(storage),
            "slots": storage.n_slots,
            "append_s": append_s,
            "frames_and_state_bytes": usage.frames_and_state,
            "features_bytes": usage.features,
            "metadata_bytes": usage.metadata,
            "sample_ms": sample_ms[5:],
            "rss_anon_kb": rss_anon_kb(),
        }


def run_child(capacity: int, directory: str) -> dict:
    cmd = [sys.executable, __file__, "--child", str(capacity), "--dir", directory]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--capacities", type=int, nargs=2, default=[2000, 20000])
    parser.add_argument(
        "--dir", default=tempfile.gettempdir(), help="where the temporary buffers go"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(fill(args.child, args.dir)))
        return
    small, large = (run_child(c, args.dir) for c in args.capacities)
    raw_obs = 2 * CAMERA * CAMERA * 3 + 4 * STATE
    n = large["transitions"]
    print(
        json.dumps(
            {
                "bench": "buffer_memory",
                "cameras": f"2x{CAMERA}x{CAMERA}x3",
                "state_dim": STATE,
                "action_dim": ACTION,
                "episode_steps": EPISODE,
                "append_batch": BATCH,
                "raw_obs_bytes": raw_obs,
                "disk_bytes_per_transition_frames_state": round(
                    large["frames_and_state_bytes"] / n, 1
                ),
                "ratio_frames_state_vs_raw_obs": round(
                    large["frames_and_state_bytes"] / n / raw_obs, 4
                ),
                "ratio_all_disk_vs_raw_obs": round(
                    (large["frames_and_state_bytes"] + large["metadata_bytes"]) / n / raw_obs, 4
                ),
                "target_ratio": 1.1,
                "metadata_bytes_per_transition": round(large["metadata_bytes"] / n, 1),
                "slots_per_transition": round(large["slots"] / n, 4),
                "append_transitions_per_s_durable": round(n / large["append_s"], 1),
                "sample_ms_batch256_median": round(float(np.median(large["sample_ms"])), 2),
                "sample_ms_batch256_p90": round(float(np.percentile(large["sample_ms"], 90)), 2),
                "rss_anon_mb": {
                    str(c): round(r["rss_anon_kb"] / 1024, 1)
                    for c, r in zip(args.capacities, (small, large), strict=True)
                },
                "disk_gb_at_largest": round(
                    (large["frames_and_state_bytes"] + large["metadata_bytes"]) / 1e9, 2
                ),
                "machine": machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
