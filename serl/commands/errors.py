"""The one error tail of the process commands (`serl learner`, `serl actor`, `serl train
--single-process`): a known failure is one line on stderr and its exit code, no traceback; any
other exception keeps its traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

# the learner refused this actor (handshake mismatch: another run, spec or agent config)
EXIT_REFUSED = 1
# the learner cannot listen on its ports (another learner there)
EXIT_LISTEN = 2
# a buffer or checkpoint write failed with learner.on_disk_error=stop
EXIT_DISK = 3
# refused to serve or connect without the security the config asks for: a network bind without
# CURVE, or no CURVE key named after this actor id
EXIT_INSECURE = 4
# the config cannot train as it stands (a frozen trunk without weights, demos for another spec,
# the wandb switch on without wandb)
EXIT_CONFIG = 5
# the base policy cannot be used: its file is refused, or a served one refuses or does not answer
EXIT_BASE = 6


def known_failures() -> tuple[tuple[type[BaseException], int], ...]:
    """(exception type, exit code) of each failure a command reports without a traceback."""
    from serl.actor.config import LearnerRefused, MissingKey
    from serl.agents.base_policy import BasePolicyError
    from serl.agents.policy_file import PolicyFileError
    from serl.data.demos import UnusableDemos
    from serl.learner.config import DiskWriteError, ListenError
    from serl.learner.prior import PriorDataError
    from serl.learner.wandb_config import WandbUnavailable
    from serl.networks.config import MissingTrunkWeights
    from serl.transport.security import InsecureBindError

    return ((LearnerRefused, EXIT_REFUSED), (ListenError, EXIT_LISTEN),
            (DiskWriteError, EXIT_DISK), (InsecureBindError, EXIT_INSECURE),
            (MissingKey, EXIT_INSECURE), (MissingTrunkWeights, EXIT_CONFIG),
            (UnusableDemos, EXIT_CONFIG), (WandbUnavailable, EXIT_CONFIG),
            (PriorDataError, EXIT_CONFIG), (BasePolicyError, EXIT_BASE),
            (PolicyFileError, EXIT_BASE))


def known_cause(err: BaseException | None) -> tuple[BaseException, int] | None:
    """The first known failure in `err`'s chain of causes, with its exit code; else None."""
    while err is not None:
        for kind, code in known_failures():
            if isinstance(err, kind):
                return err, code
        err = err.__cause__
    return None


def run_command(prog: str, body: Callable[[], int]) -> int:
    """`body()`'s exit code; a known failure (or an error raised from one) is printed as
    `prog: message` and exits with its code."""
    try:
        return body()
    except Exception as err:
        known = known_cause(err)
        if known is None:
            raise
        print(f"{prog}: {known[0]}", file=sys.stderr)
        return known[1]


def refusal(prog: str, *checks: Callable[[], object]) -> int:
    """Run each check before a command starts anything; the exit code of the first known failure
    (printed as `prog: message`), else 0."""
    def run_checks() -> int:
        for check in checks:
            check()
        return 0

    return run_command(prog, run_checks)
