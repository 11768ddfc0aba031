"""What the process-level commands (`learner`, `actor`, `train`) share: building the env a config
describes, logging, stopping cleanly on SIGINT/SIGTERM, and the handshake both sides of the
transport compare. Importing it builds nothing and imports no simulator (the learner's side never
builds an env)."""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading

from serl.data import TransitionSpec
from serl.envs.franka_config import FrankaEnvConfig
from serl.run_dir import flatten
from serl.transport.messages import PROTOCOL_VERSION

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def build_env(config, *, operator: bool = True, video_path=None, page_controls=None,
              frame_view=None):
    """The policy env of a task config; with `operator` the configured device (`config.device`, the
    scripted operator by default) sits at the intervention device, with the dashboard's buttons
    (`page_controls`, a `PageControls`) merged in when given; a device that cannot produce a
    control the config waits for (and has no page beside it) is refused before anything is
    opened. A base policy sees observations through `frame_view` (the policy's own
    `serl.actor.frames.FrameView`, whose cache then encodes each frame once; default: the
    config's `frame_view`)."""
    import serl  # noqa: F401  (registers the envs)
    from serl.devices import WithControls, check_device_controls, make_device
    from serl.envs.franka_config import attach_confirmation
    from serl.envs.registration import make
    from serl.envs.stack import make_policy_env
    from serl.reward.store import ClassifierFolder

    if operator and page_controls is None:
        check_device_controls(config.device, operator_needs(config))
    raw = make(config.env_id, config=config.env)
    device = (
        make_device(config.device, raw, config.operator, seed=config.seed) if operator else None
    )
    if device is not None and page_controls is not None:
        device = WithControls(device, page_controls)
    # a FrankaEnv's fault recovery
    attach_confirmation(raw, device, scripted=config.device.kind == "scripted")
    # None classifier_dir: the env's own reward; else the folder's newest classifier
    reward = config.reward
    classifier = ClassifierFolder(reward.classifier_dir) if reward.classifier_dir else None
    base = None
    if config.wrappers.base_policy:
        from serl.agents.base_policy import open_base

        base = open_base(config)
        if frame_view is None:
            from serl.actor.frames import frame_view as config_view

            frame_view = config_view(config)
    return make_policy_env(
        raw,
        config.wrappers,
        classifier=classifier,
        device=device,
        video_path=video_path,
        predicate=reward.predicate if reward.predicate.name != "none" else None,
        human_reward=reward.human,
        base=base,
        base_view=None if frame_view is None else frame_view.observation,
    )


def operator_needs(config) -> dict[str, str]:
    """The operator controls `config` waits for (control -> what waits for it)."""
    needs = {}
    if isinstance(config.env, FrankaEnvConfig) and config.device.kind != "scripted":
        needs["confirm_reset"] = "a robot fault's recovery waits for it"
    if config.wrappers.confirm_reset:
        needs["confirm_reset"] = "wrappers.confirm_reset: every reset waits for it"
    if config.reward.human:
        needs["mark_success"] = "reward.human: the operator's mark is the only reward"
    return needs


def transition_spec(env) -> TransitionSpec:
    return TransitionSpec.from_spaces(env.observation_space, env.action_space)


# local to each machine: the trunk's weights are compared instead (TRUNK_WEIGHTS_KEY)
LOCAL_AGENT_FIELDS = ("agent.encoder.pretrained_path",)
TRUNK_WEIGHTS_KEY = "agent.encoder.trunk_weights"


def handshake_info(config, spec: TransitionSpec, run: str) -> dict:
    """What actor and learner must agree on, one entry per field so a refusal names the one that
    differs: protocol, run name (an actor never feeds another run's learner), transition spec,
    every agent config field (the policy's architecture follows from them) and the frozen trunk's
    fingerprint (each side builds the trunk from its own config: the same weights file or seed must
    give the same bits). The weights file's path is not compared, only what it holds."""
    from serl.networks.trunk import trunk_fingerprint

    agent = flatten(json.loads(json.dumps(dataclasses.asdict(config.agent), default=str)), "agent.")
    return {
        "protocol": PROTOCOL_VERSION,
        "run": run,
        "transition_spec": spec.fingerprint(),
        "env_id": config.env_id,
        **{k: json.dumps(v) for k, v in agent.items() if k not in LOCAL_AGENT_FIELDS},
        TRUNK_WEIGHTS_KEY: trunk_fingerprint(config.agent.encoder),
        # the base policy's identity, not its path (each machine has its own copy)
        "base_policy": base_policy_identity(config),
    }


def base_policy_identity(config) -> str:
    """The identity of the config's base policy ("" without one)."""
    if not config.wrappers.base_policy:
        return ""
    from serl.agents.base_policy import base_identity

    return base_identity(config)


def configure_logging() -> None:
    """INFO lines with time and source for a process command; orbax's per-checkpoint INFO lines
    (through absl) stay quiet."""
    # force: an earlier import may already have given the root logger a handler
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, force=True)
    logging.getLogger("absl").setLevel(logging.WARNING)


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (the process then flushes, checkpoints and exits)."""
    stop = threading.Event()

    def handler(signum, _frame):
        logging.getLogger("serl").warning(
            "received %s: stopping cleanly", signal.Signals(signum).name
        )
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
