"""Loads a `serl export` of sim_pick_cube camera demos with the real `lerobot` package and checks
it against the demo files it was exported from: episode boundaries, frame indices, timestamps,
actions, states, the task string, and every camera frame (decoded by lerobot, within the codec's
error), with each video backend named. Not a test: it needs lerobot, in a scratch environment
(docs/datasets.md says which versions and the command):

    HF_HUB_OFFLINE=1 /tmp/lerobot_venv/bin/python tests/datasets/data/verify_with_lerobot.py \
        DATASET DEMOS torchcodec,pyav
"""

import glob
import sys

import lerobot
import numpy as np
import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset

root, demos, backends = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
episodes = [dict(np.load(f, allow_pickle=False)) for f in sorted(glob.glob(f"{demos}/*.npz"))]
for backend in backends:
    ds = LeRobotDataset(repo_id="local/sim_pick_cube", root=root, video_backend=backend)
    print(f"{backend}: lerobot {lerobot.__version__}, torch {torch.__version__}: {len(ds)} frames, "
          f"{ds.num_episodes} episodes, {ds.fps} fps, cameras {ds.meta.camera_keys}")
    assert ds.num_episodes == len(episodes)
    assert len(ds) == sum(len(e["actions"]) + 1 for e in episodes)
    worst = {}
    for i, e in enumerate(episodes):
        ep = ds.meta.episodes[i]
        start, stop, steps = ep["dataset_from_index"], ep["dataset_to_index"], len(e["actions"])
        assert stop - start == steps + 1, (i, start, stop, steps)  # transitions + final frame
        for j in range(steps + 1):
            item = ds[start + j]
            assert item["episode_index"].item() == i and item["frame_index"].item() == j
            assert abs(item["timestamp"].item() - j / ds.fps) < 1e-5
            action = np.zeros_like(e["actions"][0]) if j == steps else e["actions"][j]
            assert np.array_equal(item["action"].numpy(), action), (i, j)
            assert np.array_equal(item["observation.state"].numpy(), e["observations.state"][j])
            assert bool(item["serl.final_observation"].item()) == (j == steps)
            assert item["task"] == "sim_pick_cube"
            for cam in ("front", "wrist"):
                frame = item[f"observation.images.{cam}"]  # float (3, H, W) in [0, 1]
                assert tuple(frame.shape) == (3, 128, 128), frame.shape
                pixels = (frame.permute(1, 2, 0).numpy() * 255).round()
                error = np.abs(pixels - e[f"observations.{cam}"][j]).mean()
                worst[cam] = max(worst.get(cam, 0.0), float(error))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True)))
    assert batch["observation.images.front"].shape == (8, 3, 128, 128)
    print(f"{backend}: frames, actions, states, timestamps and episode boundaries as exported; "
          f"worst frame's mean abs error (grey levels) {worst}; a DataLoader batch of 8 loads")
