"""Where an experiment's reward comes from, and how its success labels are recorded and its
classifier trained."""

from __future__ import annotations

from dataclasses import dataclass, field

from serl.agents.config import ClassifierConfig
from serl.reward.predicates import StatePredicate
from serl.reward.recording import LabelRecordingConfig


@dataclass(frozen=True)
class RewardConfig:
    # classifier folder (v0001/, ...) whose newest version gives the reward;
    classifier_dir: str | None = None
    #                                    None: the env's own reward (the simulator's success)
    # the operator gives the reward: mark_success -> 1 and end, mark_failure -> 0 and end
    human: bool = False
    # state test ANDed with the classifier
    predicate: StatePredicate = field(default_factory=StatePredicate)
    # `serl train-reward` settings
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    # `serl record-labels` settings
    labels: LabelRecordingConfig = field(default_factory=LabelRecordingConfig)

    def __post_init__(self) -> None:
        if self.human and self.classifier_dir is not None:
            raise ValueError(
                "reward.human and reward.classifier_dir are exclusive: choose who gives the reward"
            )
