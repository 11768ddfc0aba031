"""Publishing: the policy's weights go out under a `WeightsVersion` (incarnation, update), each
version at most once. The incarnation grows on every restart, so an actor never takes an older
run's weights for newer ones even when the update counter repeats after a crash."""

from __future__ import annotations

from collections.abc import Callable

from serl.transport.interfaces import WeightsPublisher, WeightsVersion


def next_incarnation(checkpointed: int, recorded: int | None) -> int:
    """The incarnation a restart runs as: above both the restored checkpoint's and the last one
    recorded in the progress file (an incarnation that crashed before its first checkpoint may have
    published already, so it is never reused)."""
    return max(checkpointed, -1 if recorded is None else recorded) + 1


def version_label(incarnation: int, updates: int) -> str:
    """How a weights version reads in the progress line."""
    return f"{incarnation}:{updates}"


class WeightsOut:
    """Publishes through a `WeightsPublisher`, skipping a version already published."""

    def __init__(self, publisher: WeightsPublisher):
        self.publisher = publisher
        self.published: WeightsVersion | None = None

    def publish(self, incarnation: int, updates: int, params: Callable[[], dict]) -> bool:
        """Publish `params()` as version (incarnation, updates); False if that version is out."""
        version = WeightsVersion(incarnation, updates)
        if version == self.published:
            return False
        self.publisher.publish(version, params())
        self.published = version
        return True
