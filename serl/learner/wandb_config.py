"""The Weights & Biases switch (`learner.wandb`): off by default; importable without wandb, which is
an optional dependency (`pip install -e '.[wandb]'`; `make setup` installs it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from serl.resumable import resumable

PACKAGE = "wandb>=0.17"


@dataclass(frozen=True)
class WandbConfig:
    """Where the learner logs to Weights & Biases beside TensorBoard (`serl.learner.wandb_sink`):
    its scalars, the evaluation curve, evaluation videos and the resolved config."""

    # log this run to Weights & Biases too (needs the `wandb` package)
    enabled: bool = resumable(False)
    # "online": synced as it goes (`wandb login` first); "offline": files only, no network
    # (`wandb sync DIR/wandb/offline-run-*` uploads them later); None: wandb's own choice
    # (WANDB_MODE or `wandb offline`, else online)
    mode: Literal["online", "offline"] | None = resumable(None)
    # the W&B project
    project: str = resumable("serl")
    # the W&B team or user; None: the logged-in user's default entity
    entity: str | None = resumable(None)
    # where wandb writes its `wandb/` folder; None: the run folder
    dir: str | None = resumable(None)
    # the W&B run's name; None: the run folder's name
    name: str | None = resumable(None)
    # tags on the W&B run
    tags: tuple[str, ...] = resumable(())

    def __post_init__(self) -> None:
        if self.mode not in (None, "online", "offline"):
            raise ValueError(f"learner.wandb.mode must be 'online' or 'offline', not "
                             f"{self.mode!r}")


class WandbUnavailable(RuntimeError):
    """`learner.wandb.enabled` is on but wandb cannot log: the package is missing or its run
    would not start. The message says what to install or change."""


def import_wandb():
    """The `wandb` module, or `WandbUnavailable` naming the package to install."""
    try:
        import wandb
    except ImportError as err:
        raise WandbUnavailable(
            f"learner.wandb.enabled is on but the `wandb` package is not installed ({err}): "
            f"pip install '{PACKAGE}' (or pip install -e '.[wandb]'), or turn it off with "
            "--learner.wandb.no-enabled") from None
    return wandb


def require_wandb(cfg: WandbConfig) -> None:
    """Refuse a config whose wandb switch is on without the package (a check to run before a
    command starts anything); a no-op, importing nothing, when the switch is off."""
    if cfg.enabled:
        import_wandb()
