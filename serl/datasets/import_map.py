"""Which feature of a LeRobot dataset gives each part of a task's transitions, and the checks that
refuse a dataset that does not fit, each naming the feature and what to map.

The mapping is a small YAML file (`--map FILE.yaml`) and/or flags; anything not given follows this
project's export names (`serl.datasets.features`), then LeRobot's conventions:

    state: observation.state        # one feature, or a list concatenated in order
    cameras: {front: observation.images.front, wrist: observation.images.wrist}
    action: action                  # in the policy's frame and [-1, 1] scale
    reward: next.reward             # or success_at_end: 1 on each episode's last step
    terminated: next.terminated     # else next.done; or episode_end, never
    truncated: next.truncated       # or never
    grasp_penalty: complementary_info.discrete_penalty   # or zero
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from serl.datasets import features as F
from serl.datasets.features import TaskFeatures

SUCCESS_AT_END, EPISODE_END, NEVER, ZERO = "success_at_end", "episode_end", "never", "zero"


class MappingError(ValueError):
    """The dataset does not fit the task as mapped: one line per problem."""


@dataclass(frozen=True)
class ImportMapping:
    """Dataset feature names for each part of a transition; None: the default."""

    state: tuple[str, ...] | None = None  # features concatenated into observations["state"]
    cameras: tuple[tuple[str, str], ...] = ()  # (camera, feature); default observation.images.<cam>
    action: str | None = None  # the policy's action
    reward: str | None = None  # a feature, or success_at_end
    terminated: str | None = None  # a feature, episode_end or never
    truncated: str | None = None  # a feature or never
    grasp_penalty: str | None = None  # a feature or zero

    @classmethod
    def from_dict(cls, data: Any, source: str = "mapping") -> ImportMapping:
        """From a YAML document's mapping; an unknown key or a wrong type is named."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise MappingError(f"{source}: expected a mapping of names, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(map(str, set(data) - known))
        if unknown:
            raise MappingError(f"{source}: unknown key(s) {unknown}; the keys are "
                               f"{', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key == "cameras":
                if not isinstance(value, Mapping) or not all(
                        isinstance(v, str) for v in value.values()):
                    raise MappingError(f"{source}: cameras must map camera names to features")
                values[key] = tuple((str(k), v) for k, v in value.items())
            elif key == "state":
                names = [value] if isinstance(value, str) else value
                if not isinstance(names, list) or not names or not all(
                        isinstance(v, str) for v in names):
                    raise MappingError(f"{source}: state must be a feature or a list of them")
                values[key] = tuple(names)
            elif not isinstance(value, str):
                raise MappingError(f"{source}: {key} must be a feature name, got {value!r}")
            else:
                values[key] = value
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: Path) -> ImportMapping:
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as err:
            raise MappingError(f"{path}: cannot read the mapping ({err})") from None
        return cls.from_dict(data, str(path))

    def updated(self, **given: Any) -> ImportMapping:
        """These entries replaced by the given ones that are not None (flags over a file)."""
        given = {k: v for k, v in given.items() if v is not None and v != ()}
        if "cameras" in given:
            given["cameras"] = tuple({**dict(self.cameras), **dict(given["cameras"])}.items())
        return replace(self, **given)


@dataclass(frozen=True)
class Resolved:
    """The mapping settled against one dataset: a feature name, or a rule, for every part."""

    state: tuple[str, ...]
    cameras: dict[str, str]  # camera -> feature
    action: str
    reward: str
    terminated: str
    truncated: str
    grasp_penalty: str
    provenance: tuple[str, ...]  # the serl.* features present (kept as recorded)
    final: bool  # the dataset marks each episode's final observation (serl.final_observation)


def _size(feature: Mapping[str, Any]) -> int:
    shape = feature.get("shape") or [1]
    n = 1
    for d in shape:
        n *= int(d)
    return n


def frame_size(feature: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """(height, width, channels) of a camera feature: its video info, else its shape read by its
    names (channels first when the names say so)."""
    video = feature.get("info") or {}  # LeRobot's per-feature video info, not a step's info
    if "video.height" in video and "video.width" in video:
        return int(video["video.height"]), int(video["video.width"]), int(
            video.get("video.channels", 3))
    shape, names = list(feature.get("shape") or []), feature.get("names") or []
    if len(shape) != 3:
        return None
    if names and str(names[0]).startswith("channel"):
        return int(shape[1]), int(shape[2]), int(shape[0])
    return int(shape[0]), int(shape[1]), int(shape[2])


def resolve(mapping: ImportMapping, dataset: Mapping[str, Any], fps: float,
            task: TaskFeatures) -> Resolved:
    """Settle `mapping` for a dataset (its features and fps) and a task; MappingError listing every
    problem, each naming the feature and what to map."""
    have, problems = dict(dataset), []

    def pick(given: str | None, defaults: tuple[str, ...], fallback: str) -> str:
        return given or next((d for d in defaults if d in have), fallback)

    if abs(fps - task.fps) > 1e-6:
        problems.append(f"fps: the dataset runs at {fps:g} fps, this task's control rate is "
                        f"{task.fps:g} Hz: resample the dataset to {task.fps:g} fps or import it "
                        "into a task of its rate")
    state = mapping.state or (F.STATE,)
    sizes = []
    for name in state:
        if name not in have:
            problems.append(f"{name}: missing from the dataset; map `state` to the feature(s) "
                            f"holding this task's {len(task.state_names)} state values "
                            f"({', '.join(task.state_names)})")
        else:
            sizes.append(_size(have[name]))
    if len(sizes) == len(state) and sum(sizes) != len(task.state_names):
        problems.append(f"{', '.join(state)}: {sum(sizes)} values, this task's state has "
                        f"{len(task.state_names)} ({', '.join(task.state_names)}): map `state` "
                        "to features of that many values in all")
    cameras = {cam: dict(mapping.cameras).get(cam, F.IMAGES + cam) for cam in task.cameras}
    for cam, name in cameras.items():
        want = tuple(task.spec.observation_spec[cam][0])
        got = frame_size(have[name]) if name in have else None
        if name not in have or have[name].get("dtype") not in ("video", "image") or not got:
            problems.append(f"{name}: no camera feature of that name; map `cameras.{cam}` to the "
                            f"dataset's camera of {want[0]}x{want[1]} frames")
        elif got != want:
            problems.append(f"{name}: frames {got[0]}x{got[1]}x{got[2]}, this task's camera "
                            f"{cam} is {want[0]}x{want[1]}x{want[2]}: map `cameras.{cam}` to a "
                            "camera of that size, or import into a config of this size "
                            f"(--env.image-size {got[0]})")
    action = mapping.action or F.ACTION
    if action not in have:
        problems.append(f"{action}: missing from the dataset; map `action` to the feature of "
                        f"the policy's {task.spec.action_dim}-D action "
                        f"({', '.join(task.action_names)})")
    elif _size(have[action]) != task.spec.action_dim:
        problems.append(f"{action}: {_size(have[action])} values, this task's action has "
                        f"{task.spec.action_dim} ({', '.join(task.action_names)}): map `action` "
                        "to a feature of that size, or import into a config commanding those "
                        "axes (--wrappers.arm-axes ...)")
    reward = pick(mapping.reward, (F.REWARD,), F.REWARD)
    terminated = pick(mapping.terminated, (F.TERMINATED, F.DONE), EPISODE_END)
    truncated = pick(mapping.truncated, (F.TRUNCATED,), NEVER)
    penalty = pick(mapping.grasp_penalty, (F.GRASP_PENALTY,), ZERO)
    for part, name, rules in (("reward", reward, (SUCCESS_AT_END,)),
                              ("terminated", terminated, (EPISODE_END, NEVER)),
                              ("truncated", truncated, (NEVER,)),
                              ("grasp_penalty", penalty, (ZERO,))):
        if name in rules:
            continue
        if name not in have:
            problems.append(f"{name}: missing from the dataset; map `{part}` to a feature of one "
                            f"value per frame, or to {' or '.join(rules)}")
        elif _size(have[name]) != 1:
            problems.append(f"{name}: {_size(have[name])} values per frame; map `{part}` to a "
                            "feature of one value per frame")
    if problems:
        raise MappingError("the dataset does not fit this task:\n  " + "\n  ".join(problems))
    provenance = tuple(k for k in (F.INTERVENED, F.POLICY_VERSION, F.CLASSIFIER_VERSION,
                                   F.TIMESTAMP, F.EPISODE_ID, F.STEP) if k in have)
    return Resolved(tuple(state), cameras, action, reward, terminated, truncated, penalty,
                    provenance, F.FINAL in have)
