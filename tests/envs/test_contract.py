"""The env contract (`serl.envs.contract`): light to import, the spaces of every simulated task from
the config alone equal to the built env's, every info key named, and the stack's typed handle."""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from contract_check import Checked

import experiments
import serl  # noqa: F401  (registers the env ids)
from serl.devices.scripted import ScriptedOperator
from serl.envs import contract
from serl.envs.registration import make
from serl.envs.stack import PolicyEnvConfig, make_policy_env

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("jax", "flax", "orbax", "mujoco")
SIM_TASKS = [n for n in experiments.names() if n.startswith("sim_")]


def imported_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return out.split()


@pytest.mark.timeout(60)
def test_the_contract_and_the_env_configs_import_without_jax_or_mujoco():
    assert imported_after("import serl.envs.contract, serl.envs.scene") == []
    assert imported_after("import serl.envs.policy_config, serl.envs.sim.config, "
                          "serl.envs.franka_config") == []
    # The real env takes its spaces from the contract, not from the simulator.
    assert "mujoco" not in imported_after("import serl.envs.franka_env")
    assert "mujoco" not in imported_after("import experiments\nfor n in experiments.names(): "
                                          "experiments.load(n)")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("task", SIM_TASKS)
def test_the_spaces_of_every_simulated_task_come_from_its_config(task):
    config = experiments.load(task)
    raw = make(config.env_id, config=config.env)
    try:
        assert raw.observation_space == contract.observation_space(config.env)
        assert raw.action_space == contract.ACTION_SPACE
        env = make_policy_env(raw, config.wrappers)
        obs_space, action_space = contract.policy_spaces(config.env, config.wrappers)
        assert env.observation_space == obs_space and env.action_space == action_space
    finally:
        raw.close()


def test_gripper_thresholds_and_actions():
    assert [contract.gripper_command(c) for c in (-1.0, -0.5, 0.0, 0.49, 0.5)] == [
        True, True, None, None, False]
    with pytest.raises(ValueError, match="shape"):
        contract.validate_action(np.zeros(6))
    assert contract.validate_action(np.full(7, 3.0)).max() == 1.0


def test_an_unknown_info_key_is_refused_by_name():
    assert contract.check_info({"succeed": True, "grasp_penalty": 0.0})
    with pytest.raises(KeyError, match=r"\['intervned'\]"):
        contract.check_info({"succeed": True, "intervned": True})


class Always:
    """A classifier that calls every frame a success with probability 0.9."""

    version, threshold, confirm_steps = 3, 0.5, 2

    def __call__(self, obs) -> float:
        return 0.9


@pytest.mark.timeout(60)
def test_the_full_stack_emits_only_contract_keys(tmp_path):
    raw = make("serl/PandaPickCube-v0", image_obs=False, max_episode_steps=6)
    device = ScriptedOperator(raw, seed=0)
    env = Checked(make_policy_env(raw, PolicyEnvConfig(), classifier=Always(), device=device))
    seen = set()
    for seed in range(2):
        _, info = env.reset(seed=seed)
        seen |= set(info)
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(np.zeros(7, np.float32))
            seen |= set(info)
            done = terminated or truncated
    assert {"intervened", "classifier_prob", "grasp_penalty", "succeed"} <= seen
    env.close()


@pytest.mark.timeout(60)
def test_the_handle_sets_what_the_stack_has_and_reports_what_it_lacks(tmp_path):
    raw = make("serl/PandaPickCube-v0", image_obs=False)
    bare = make_policy_env(raw)
    controls = bare.controls
    assert not controls.has_interventions and not controls.has_classifier
    assert controls.set_interventions(False) is False
    assert controls.takeover_scale() is None and controls.set_takeover_scale(0.5) is False
    assert controls.set_operator_stop(threading.Event()) is False
    assert controls.set_positives_dir(tmp_path) is False

    device = ScriptedOperator(raw, seed=0)
    env = make_policy_env(raw, device=device, classifier=Always())
    controls = env.controls
    assert controls.takeover_scale() == 1.0
    assert controls.set_takeover_scale(0.25) and device.takeover_scale == 0.25
    assert controls.takeover_scale() == 0.25
    assert controls.set_interventions(False)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(7, np.float32))
    assert not info["intervened"]  # evaluation: the policy alone acts
    stop = threading.Event()
    assert controls.set_operator_stop(stop)
    assert controls.set_positives_dir(tmp_path / "positives")
    env.close()


# ---------- the static check: every literal key on a variable named `info` ----------
# Their `info` is something else: training metrics, the transport handshake.
NOT_STEP_INFO = ("serl/agents/", "serl/learner/", "serl/transport/")


def info_keys(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, key) of every string-literal key used on a variable named `info`."""

    def is_info(node) -> bool:
        return isinstance(node, ast.Name) and node.id == "info"

    def literal(node) -> str | None:
        is_str = isinstance(node, ast.Constant) and isinstance(node.value, str)
        return node.value if is_str else None

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and is_info(node.value) and literal(node.slice):
            found.append((node.lineno, literal(node.slice)))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and is_info(node.func.value):
            if node.func.attr in ("get", "pop", "setdefault") and node.args \
                    and literal(node.args[0]):
                found.append((node.lineno, literal(node.args[0])))
            if node.func.attr == "update":
                found += [(node.lineno, k.arg) for k in node.keywords if k.arg]
                for arg in node.args:
                    if isinstance(arg, ast.Dict):
                        found += [(node.lineno, literal(k)) for k in arg.keys if literal(k)]
        elif isinstance(node, ast.Compare) and literal(node.left) \
                and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops) \
                and any(is_info(c) for c in node.comparators):
            found.append((node.lineno, literal(node.left)))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(is_info(t) for t in targets) and node.value is not None:
                value = node.value
                if isinstance(value, ast.Dict):
                    found += [(node.lineno, literal(k)) for k in value.keys if literal(k)]
                elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name) \
                        and value.func.id == "dict":
                    found += [(node.lineno, k.arg) for k in value.keywords if k.arg]
    return found


def test_every_literal_info_key_in_serl_is_a_step_info_key():
    sample = ast.parse('info["succeed"]; info.get("x1"); "x2" in info; info.update(x3=1)\n'
                       'info = dict(x4=1)\ninfo = {"x5": 1}\ninfo.update({"x6": 2})')
    expected = ["succeed", "x1", "x2", "x3", "x4", "x5", "x6"]
    assert sorted(k for _, k in info_keys(sample)) == expected
    unknown, files = [], 0
    for path in sorted((ROOT / "serl").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(NOT_STEP_INFO):
            continue
        files += 1
        keys = info_keys(ast.parse(path.read_text(), rel))
        unknown += [f"{rel}:{line}: {key!r}" for line, key in keys
                    if key not in contract.STEP_INFO_KEYS]
    assert files > 20 and unknown == []
