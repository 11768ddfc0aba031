"""config.json records the task and the config class with the resolved config, so a run's config is
rebuilt as the class it ran with (`serl eval`), and an older file without the record is rebuilt from
its task or refused."""

import dataclasses
import json
import subprocess
import sys

import pytest

import experiments
from experiments.base import ExperimentConfig, RigExperimentConfig
from serl.config_io import ConfigRecordError, config_class, load_run_config, rebuild
from serl.envs.franka_config import FrankaEnvConfig
from serl.run_dir import RunDirError, prepare_run_dir


@pytest.mark.parametrize("task", experiments.names())
def test_every_task_config_is_rebuilt_exactly_from_its_record(tmp_path, task):
    config = experiments.load(task)
    prepare_run_dir(tmp_path / "run", config, resume=False, task=task)
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["task"] == task and record["config_class"].endswith(type(config).__qualname__)
    assert load_run_config(tmp_path / "run") == (task, config)


def test_a_rig_run_is_rebuilt_as_its_class_with_its_values(tmp_path):
    base = experiments.load("sim_pick_cube_ros")
    config = dataclasses.replace(base, seed=7, env=dataclasses.replace(base.env,
                                                                       max_episode_steps=77))
    prepare_run_dir(tmp_path / "anything", config, resume=False, task="sim_pick_cube_ros")
    task, rebuilt = load_run_config(tmp_path / "anything")
    assert type(rebuilt) is RigExperimentConfig and type(rebuilt.env) is FrankaEnvConfig
    assert rebuilt == config and rebuilt.env.max_episode_steps == 77 and rebuilt.seed == 7
    assert task == "sim_pick_cube_ros"


def test_resume_keeps_the_record_and_refuses_another_config_class(tmp_path):
    run = prepare_run_dir(tmp_path / "run", experiments.load("sim_pick_cube_ros"), resume=False,
                          task="sim_pick_cube_ros")
    prepare_run_dir(run, experiments.load("sim_pick_cube_ros"), resume=True)
    assert json.loads((run / "config.json").read_text())["task"] == "sim_pick_cube_ros"
    with pytest.raises(RunDirError, match="config_class"):
        prepare_run_dir(run, experiments.load("sim_pick_cube"), resume=True, task="sim_pick_cube")


def test_an_older_file_is_rebuilt_from_its_task_or_refused(tmp_path):
    config = experiments.load("sim_pick_cube_ros")
    flat = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    assert rebuild({"task": "sim_pick_cube_ros", **flat}) == ("sim_pick_cube_ros", config)
    old = tmp_path / "sim_pick_cube_ros"
    old.mkdir()
    (old / "config.json").write_text(json.dumps(flat))
    assert load_run_config(old) == ("sim_pick_cube_ros", config)
    # Resuming an older run keeps working (and writes the record).
    prepare_run_dir(old, config, resume=True, task="sim_pick_cube_ros")
    assert json.loads((old / "config.json").read_text())["config_class"].endswith(
        "RigExperimentConfig")
    unknown = tmp_path / "my_run"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps(flat))
    with pytest.raises(ConfigRecordError, match="neither the task nor the config class"):
        load_run_config(unknown)
    out = subprocess.run([sys.executable, "-m", "serl.cli", "eval", str(unknown)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "neither the task nor the config class" in out.stderr


def test_a_record_may_name_only_experiment_config_classes():
    assert config_class("experiments.base:ExperimentConfig") is ExperimentConfig
    for name in ("os:system", "serl.durable:write_json", "experiments.base:<locals>.X",
                 "serl.envs.franka_config:FrankaEnvConfig"):
        with pytest.raises(ConfigRecordError):
            config_class(name)
