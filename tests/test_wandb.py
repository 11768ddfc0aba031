"""Weights & Biases beside TensorBoard (`learner.wandb`): a real short run of the state task (a
real actor on the simulated arm, then the learner over the in-process transport) logged in
offline mode with every network address pointing at a closed port, read back from the offline
run's own transaction log; and, with the switch off, wandb is never imported, while with it on and
wandb absent the error names the package."""

import dataclasses
import json
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

# a port nothing listens on: any request wandb tried would fail
CLOSED = "http://127.0.0.1:9"


def wandb_records(path: Path):
    """The protobuf records of a `.wandb` file: wandb's transaction log is LevelDB's log format
    (a 7-byte ':W&B' header, 32 KiB blocks, records in chunks with a 7-byte crc/length/type
    header) of `wandb_internal_pb2.Record`s, as `wandb sync` reads it."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's zero-filled tail
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL, or LAST of FIRST/MIDDLE/LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def history_rows(records) -> list[dict]:
    """Each `run.log` call's values by key (a media value's fields as `key/field`)."""
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json)
             for item in r.history.item}
            for r in records if r.WhichOneof("record_type") == "history"]


def tensorboard_tags(folder: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return {v.tag for path in folder.glob("events.out.tfevents.*")
            for event in EventFileLoader(str(path)).Load() for v in event.summary.value}


def tiny_config(tmp_path: Path):
    import experiments
    from serl.learner.wandb_config import WandbConfig

    base = experiments.load("sim_pick_cube_state")
    return dataclasses.replace(
        base,
        env=dataclasses.replace(base.env, max_episode_steps=10),
        agent=dataclasses.replace(base.agent, hidden_dims=(16,), batch_size=8),
        learner=dataclasses.replace(
            base.learner, min_online=8, min_demo=4, max_updates=20, log_every=5,
            publish_every=5, checkpoint_every=1000, max_minutes=None, target_eval_success=None,
            wandb=WandbConfig(enabled=True, mode="offline", project="serl-test", tags=("ci",))),
        actor=dataclasses.replace(base.actor, max_env_steps=30, max_steps_per_update=None,
                                  eval_every_episodes=1, eval_episodes=1, flush_timeout_s=0.1),
        demos_dir=str(tmp_path / "no-demos"), demo_episodes=0,
    )


@pytest.mark.timeout(120)
def test_an_offline_run_logs_scalars_config_curve_and_videos(tmp_path, monkeypatch):
    pytest.importorskip("wandb")  # the `wandb` extra (`make setup` installs it)
    from serl.actor.build import build_actor, inprocess_actor_side
    from serl.learner.build import build_learner, inprocess_learner_side
    from serl.run_dir import prepare_run_dir
    from serl.transport.inprocess import InProcessTransport

    for var in ("WANDB_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, CLOSED)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "home" / var.lower()))
    config = tiny_config(tmp_path)
    run = prepare_run_dir(tmp_path / "run", config, resume=False, task="sim_pick_cube_state")
    transport = InProcessTransport()
    learner = build_learner(config, inprocess_learner_side(transport), run, resume=False)
    learner.publish()
    # the actor first (its evaluations write their videos), then the learner hears it all
    actor = build_actor(config, inprocess_actor_side(transport, config, 0), run / "actor")
    try:
        actor.run(threading.Event())
    finally:
        actor.env.close()
    try:
        assert learner.run(threading.Event()).updates == 20
    finally:
        learner.close()

    (log_file,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    records = list(wandb_records(log_file))
    (start,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert start.project == "serl-test" and list(start.tags) == ["ci"]
    # the resolved config, as config.json records it
    logged = {item.key: json.loads(item.value_json) for item in start.config.update}
    recorded = json.loads((run / "config.json").read_text())
    assert logged["task"] == "sim_pick_cube_state"
    assert logged["config_class"] == recorded["config_class"]
    for key, value in recorded["config"].items():
        assert logged[key] == value, key
    assert logged["learner"]["wandb"]["mode"] == "offline"

    rows = history_rows(records)
    # the same scalars as TensorBoard
    logged_tags = {k for row in rows for k in row if not k.startswith("_")}
    assert tensorboard_tags(run / "tensorboard" / "learner") <= logged_tags
    updates = [row["update"] for row in rows if "learner/critic_loss" in row]
    assert updates == [5, 10, 15, 20]
    # the evaluation curve: each evaluation's success at its env steps
    evals = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    evals = [(r["env_steps"], r["eval_success"]) for r in evals if "eval_success" in r]
    assert evals and [(row["env_steps"], row["eval/eval_success"]) for row in rows
                      if "eval/eval_success" in row] == evals
    # each evaluation's video, copied into the offline run at its env steps
    videos = sorted((run / "videos").glob("eval_*.mp4"))
    assert len(videos) == len(evals)
    logged_videos = [row for row in rows if row.get("eval/video/_type") == "video-file"]
    assert [row["env_steps"] for row in logged_videos] == [steps for steps, _ in evals]
    for row in logged_videos:
        assert (log_file.parent / "files" / row["eval/video/path"]).stat().st_size > 0


ABSENT = """
import sys, tempfile
from pathlib import Path
from serl.learner.config import LearnerConfig
from serl.learner.reporting import Reporting
from serl.learner.wandb_config import WandbConfig, WandbUnavailable, require_wandb
import experiments, serl.learner.loop, serl.commands.train

folder = Path(tempfile.mkdtemp())
off = Reporting(folder / "off", LearnerConfig(), print)
off.scalars(1, {"learner/x": 1.0})
off.observe_actors([{"eval_success": 1.0, "env_steps": 3}], "0:1")
off.close()
print("imported", sorted(m for m in sys.modules if m.split(".")[0] == "wandb"))
sys.modules["wandb"] = None  # wandb is not installed
cfg = LearnerConfig(wandb=WandbConfig(enabled=True, mode="offline"))
for attempt in (lambda: require_wandb(cfg.wandb), lambda: Reporting(folder / "on", cfg, print)):
    try:
        attempt()
    except WandbUnavailable as err:
        print("refused:", err)
"""


@pytest.mark.timeout(60)
def test_off_imports_no_wandb_and_on_without_it_names_the_package(tmp_path):
    out = subprocess.run([sys.executable, "-c", ABSENT], capture_output=True, text=True,
                         timeout=50, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "imported []" in out.stdout, out.stdout
    refusals = [line for line in out.stdout.splitlines() if line.startswith("refused:")]
    assert len(refusals) == 2, out.stdout
    for line in refusals:
        assert "`wandb` package is not installed" in line and "pip install 'wandb>=0.17'" in line
