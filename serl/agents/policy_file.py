"""A policy file: one `.npz` of float32 arrays (`params/<path>`, a `policy_params()` tree) and a
JSON `header`, numpy only and never pickle, written atomically.

The header records the format and its version, the kind of policy (`bc`), the task and its config
record (task, config class, the resolved config: `serl eval FILE` rebuilds the env from it), the
agent config the policy is built as, the action space (size, arm axes, gripper), the observation
spec, the frozen trunk's fingerprint, the weights' fingerprint, the identity and the training
report. The identity, `sha256:<16 hex>` over the weights and everything that decides what the
policy computes (kind, agent config, action space, observation spec, trunk), is what a run's config
and handshake carry for a base policy. Loading refuses, naming what differs: another format or
version, a truncated or altered file, weights that do not fit the recorded architecture, a spec its
own task config no longer gives, or a frozen trunk this machine builds differently."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

FORMAT, FORMAT_VERSION = "serl-policy", 1
HEADER, PARAMS = "header", "params/"


class PolicyFileError(ValueError):
    """A policy file that cannot be used here; the message names the file and what differs."""


@dataclasses.dataclass(frozen=True)
class PolicyFile:
    """A loaded, checked policy file."""

    # where it was read from
    path: Path
    # the JSON header as written
    header: dict
    # the policy_params() tree (numpy float32 leaves)
    params: dict
    # the task the policy was trained on (None if unrecorded)
    task: str | None
    # that task's config as recorded (an ExperimentConfig subclass)
    config: Any
    # the agent config the policy is built as (`serl.agents.bc.policy_agent_config`)
    agent: Any
    # the policy's action size
    action_dim: int
    # `sha256:<16 hex>` of the weights and what decides the policy's function
    identity: str

    def policy_function(self) -> Callable:
        """`evaluate(params, obs) -> action` in the policy's action space (call it with
        `self.params`): `serl.agents.factory.policy_functions`' deterministic policy."""
        from serl.agents.bc import policy_function

        return policy_function(self.agent, self.action_dim)


def task_spaces(config) -> tuple[dict, dict]:
    """(observation spec JSON, action space record) the contract gives a task config."""
    from serl.data.schema import TransitionSpec
    from serl.envs.contract import policy_gripper, policy_spaces

    spec = TransitionSpec.from_spaces(*policy_spaces(config.env, config.wrappers))
    action = {"dim": spec.action_dim, "low": -1.0, "high": 1.0,
              "arm_axes": list(config.wrappers.arm_axes), "gripper": policy_gripper(config.env)}
    return json.loads(json.dumps(spec.to_json(), sort_keys=True)), action


def flat_params(params: dict) -> dict[str, np.ndarray]:
    """`path/to/leaf` -> float32 array (empty subtrees have no entry)."""
    from flax.traverse_util import flatten_dict

    return {k: np.asarray(v, np.float32) for k, v in flatten_dict(params, sep="/").items()}


def weights_fingerprint(flat: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key, array in sorted(flat.items()):
        digest.update(f"{key}:{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).astype("<f4", copy=False).tobytes())
    return "sha256:" + digest.hexdigest()[:16]


def identity(header: dict) -> str:
    """The policy's identity from its header's fields."""
    keys = ("kind", "agent", "action_space", "observation_spec", "trunk_fingerprint",
            "weights_fingerprint")
    text = json.dumps({k: header.get(k) for k in keys}, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def save_policy(path: str | Path, params: dict, *, kind: str, config, task: str | None, agent,
                report: dict) -> dict:
    """Write a policy file atomically; returns its header (with `identity`)."""
    from serl.config_io import config_record, config_to_dict
    from serl.durable import write_npz
    from serl.networks.trunk import trunk_fingerprint

    flat = flat_params(params)
    observation_spec, action_space = task_spaces(config)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
              **config_record(config, task), "agent": config_to_dict(agent),
              "action_space": action_space, "observation_spec": observation_spec,
              "trunk_fingerprint": trunk_fingerprint(agent.encoder),
              "weights_fingerprint": weights_fingerprint(flat), "report": report}
    header["identity"] = identity(header)
    arrays = {HEADER: np.array(json.dumps(header, default=_jsonable))}
    write_npz(path, {**arrays, **{PARAMS + k: v for k, v in flat.items()}})
    return header


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def read_header(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, `path/to/leaf` -> array) of a file of this format and version, or
    `PolicyFileError`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        header = json.loads(str(arrays.pop(HEADER))) if HEADER in arrays else None
    except Exception as err:  # zip, header and truncation errors come in many types
        raise PolicyFileError(f"{path}: not a readable policy file ({type(err).__name__}: "
                              f"{err})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise PolicyFileError(f"{path}: not a serl policy file (format {found!r}, "
                              f"expected {FORMAT!r})")
    if header.get("format_version") != FORMAT_VERSION:
        raise PolicyFileError(f"{path}: policy file format version "
                              f"{header.get('format_version')!r}, this serl reads version "
                              f"{FORMAT_VERSION}; train it again with `serl train-bc`")
    flat = {k[len(PARAMS):]: v for k, v in arrays.items() if k.startswith(PARAMS)}
    return header, flat


def load_policy(path: str | Path) -> PolicyFile:
    """Read and check a policy file (see the module docstring for what is refused)."""
    from serl.agents.config import SACConfig
    from serl.config_io import ConfigRecordError, from_dict, rebuild

    path = Path(path)
    header, flat = read_header(path)
    try:
        task, config = rebuild({k: header.get(k) for k in ("task", "config_class", "config")})
        agent = from_dict(SACConfig, header["agent"])
        spec, action = header["observation_spec"], header["action_space"]
        action_dim = int(action["dim"])
    except (ConfigRecordError, KeyError, TypeError, ValueError) as err:
        raise PolicyFileError(f"{path}: its header cannot be rebuilt "
                              f"({type(err).__name__}: {err})") from None
    expected_spec, expected_action = task_spaces(config)
    if problem := space_difference(spec, action, expected_spec, expected_action):
        raise PolicyFileError(f"{path}: the file records a policy of another task spec than its "
                              f"own task config gives ({problem})")
    params = _checked_params(path, flat, agent, config, action_dim)
    if weights_fingerprint(flat) != header.get("weights_fingerprint"):
        raise PolicyFileError(f"{path}: its weights fingerprint {weights_fingerprint(flat)} is not "
                              f"the recorded {header.get('weights_fingerprint')}: the file was "
                              "altered or damaged")
    if identity(header) != header.get("identity"):
        raise PolicyFileError(f"{path}: its identity {identity(header)} is not the recorded "
                              f"{header.get('identity')}: the header was altered")
    _check_trunk(path, header, agent)
    return PolicyFile(path, header, params, task, config, agent, action_dim, header["identity"])


def space_difference(spec: dict, action: dict, expected_spec: dict, expected_action: dict) -> str:
    """What differs between two (observation spec, action space) records, in a few words ("" when
    nothing does)."""
    got, want = spec.get("observations") or {}, expected_spec.get("observations") or {}
    parts = [f"observation {k!r} {_entry(got.get(k))}, expected {_entry(want.get(k))}"
             for k in sorted(set(got) | set(want)) if got.get(k) != want.get(k)]
    for key in ("dim", "arm_axes", "gripper"):
        if action.get(key) != expected_action.get(key):
            parts.append(f"action {key} {action.get(key)!r}, expected {expected_action.get(key)!r}")
    if not parts and spec != expected_spec:
        parts.append("the observation spec records differ")
    return "; ".join(parts)


def _entry(value) -> str:
    """An observation spec entry, [shape, dtype], as `(128, 128, 3) uint8`."""
    return "absent" if value is None else f"{tuple(value[0])} {value[1]}"


def check_task(policy: PolicyFile, config, what: str = "this task") -> None:
    """`PolicyFileError` unless `policy` sees and acts as `config`'s policy does (observation spec,
    action size, arm axes, gripper): what a run on a base policy checks first."""
    if problem := space_difference(policy.header["observation_spec"],
                                   policy.header["action_space"], *task_spaces(config)):
        raise PolicyFileError(f"{policy.path}: trained for task {policy.task!r}, which differs "
                              f"from {what}: {problem}")


def _checked_params(path: Path, flat: dict, agent, config, action_dim: int) -> dict:
    """The tree of `flat` laid out as `policy_params_template` expects (names, shapes), or
    `PolicyFileError` naming the entries that differ."""
    from flax.traverse_util import empty_node, flatten_dict, unflatten_dict

    from serl.agents.factory import policy_params_template
    from serl.envs.contract import policy_spaces

    observation_space, _ = policy_spaces(config.env, config.wrappers)
    try:
        template = policy_params_template(agent, observation_space, action_dim)
    except ValueError as err:
        raise PolicyFileError(f"{path}: its agent config builds no policy ({err})") from None
    expected = flatten_dict(template, keep_empty_nodes=True, sep="/")
    leaves = {k: v.shape for k, v in expected.items() if v is not empty_node}
    problems = [f"missing {k}" for k in sorted(set(leaves) - set(flat))]
    problems += [f"unexpected {k}" for k in sorted(set(flat) - set(leaves))]
    problems += [f"{k} is {flat[k].dtype} {flat[k].shape}, expected float32 {leaves[k]}"
                 for k in sorted(set(flat) & set(leaves))
                 if flat[k].shape != leaves[k] or flat[k].dtype != np.float32]
    if problems:
        raise PolicyFileError(f"{path}: its weights do not fit the recorded architecture ("
                              + "; ".join(problems[:4])
                              + (f"; {len(problems) - 4} more" if len(problems) > 4 else "") + ")")
    return unflatten_dict({k: (v if v is empty_node else flat[k]) for k, v in expected.items()},
                          sep="/")


def _check_trunk(path: Path, header: dict, agent) -> None:
    from serl.networks.config import MissingTrunkWeights
    from serl.networks.trunk import trunk_fingerprint

    enc = agent.encoder
    try:
        here = trunk_fingerprint(enc)
    except (MissingTrunkWeights, OSError, ValueError) as err:
        raise PolicyFileError(f"{path}: its frozen trunk cannot be built here ({err})") from None
    if here != header.get("trunk_fingerprint"):
        source = (f"the weights file {enc.pretrained_path}" if enc.pretrained_path
                  else f"trunk_seed {enc.trunk_seed}")
        raise PolicyFileError(f"{path}: the policy was trained on the frozen trunk "
                              f"{header.get('trunk_fingerprint')}, but {source} gives {here} "
                              "here: its head would act on features it never saw")
