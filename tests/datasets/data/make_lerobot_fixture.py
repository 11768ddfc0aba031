"""Writes tests/datasets/data/lerobot_written/: a tiny LeRobotDataset v3.0 made by the real
`lerobot` package's own writer (LeRobotDataset.create, add_frame, save_episode), so the import is
tested on a dataset this project did not write. Not a test: it needs lerobot (see
docs/datasets.md for the scratch environment), and was run once:

    HF_HUB_OFFLINE=1 /tmp/lerobot_venv/bin/python tests/datasets/data/make_lerobot_fixture.py DEMOS

DEMOS: a folder of sim_pick_cube demo files (serl record-demos sim_pick_cube --out DEMOS); the
first frames of its first two episodes, states and actions become the dataset's two episodes,
with the feature names LeRobot's HIL-SERL recorder uses (gym_manipulator.py)."""

import glob
import shutil
import sys
from pathlib import Path

import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset

OUT = Path(__file__).parent / "lerobot_written"
LENGTHS = (6, 5)

files = sorted(glob.glob(f"{sys.argv[1]}/*.npz"))[:2]
features = {
    "observation.state": {"dtype": "float32", "shape": (19,), "names": None},
    "observation.images.front": {"dtype": "video", "shape": (128, 128, 3),
                                 "names": ["height", "width", "channels"]},
    "observation.images.wrist": {"dtype": "video", "shape": (128, 128, 3),
                                 "names": ["height", "width", "channels"]},
    "action": {"dtype": "float32", "shape": (7,),
               "names": ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]},
    "next.reward": {"dtype": "float32", "shape": (1,), "names": None},
    "next.done": {"dtype": "bool", "shape": (1,), "names": None},
    "complementary_info.discrete_penalty": {"dtype": "float32", "shape": (1,),
                                            "names": ["discrete_penalty"]},
}
shutil.rmtree(OUT, ignore_errors=True)
ds = LeRobotDataset.create("local/lerobot_written", fps=10, root=OUT, features=features,
                           use_videos=True)
for path, length in zip(files, LENGTHS, strict=True):
    e = np.load(path, allow_pickle=False)
    for t in range(length):
        last = t == length - 1
        ds.add_frame({
            "observation.state": e["observations.state"][t],
            "observation.images.front": e["observations.front"][t],
            "observation.images.wrist": e["observations.wrist"][t],
            "action": e["actions"][t],
            "next.reward": np.array([1.0 if last else 0.0], np.float32),
            "next.done": np.array([last]),
            "complementary_info.discrete_penalty": np.array([e["grasp_penalty"][t]], np.float32),
            "task": "pick up the cube",
        })
    ds.save_episode()
ds.finalize()
print(sorted(str(p.relative_to(OUT)) for p in OUT.rglob("*") if p.is_file()))
