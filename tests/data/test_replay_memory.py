"""The buffer lives on disk: resident anonymous memory hardly grows with capacity."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FILL = """
import sys, tempfile
import numpy as np
sys.path.insert(0, {helpers!r})
from replay_helpers import camera_spec, episode, rss_anon_kb
from serl.data import ReplayStorage

capacity, spec, rng = {capacity}, camera_spec(64), np.random.default_rng(0)
with (tempfile.TemporaryDirectory() as tmp,
      ReplayStorage(tmp, spec, capacity, chunk_size=100) as storage):
    while len(storage) < capacity:
        storage.append(episode(rng, spec, len(storage) // 20, 20), "a", len(storage))
    for _ in range(5):
        storage.sample(64, rng)
    print(rss_anon_kb())
"""


def rss_after_filling(capacity: int) -> int:
    code = FILL.format(helpers=str(Path(__file__).parent), capacity=capacity)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.timeout(60)
def test_resident_memory_does_not_grow_with_capacity():
    small, large = rss_after_filling(200), rss_after_filling(2000)
    frames_mb = 2000 * 2 * 64 * 64 * 3 / 2**20  # ~47 MB of frames that must not be resident
    assert (large - small) / 1024 < 0.15 * frames_mb, (small, large)
