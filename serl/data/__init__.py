"""Replay data: the transition schema, durable disk-backed replay storage, and RLPD batch mixing."""

from serl.data.mixed import PrefetchIterator, sample_mixed
from serl.data.schema import (
    Batch,
    Transition,
    TransitionSpec,
    batch_len,
    concatenate,
    fixed_fields,
    stack,
    take,
    unstack,
)
from serl.data.storage import AppendResult, DiskUsage, ReplayStorage

__all__ = [
    "AppendResult",
    "Batch",
    "DiskUsage",
    "PrefetchIterator",
    "ReplayStorage",
    "Transition",
    "TransitionSpec",
    "batch_len",
    "concatenate",
    "fixed_fields",
    "sample_mixed",
    "stack",
    "take",
    "unstack",
]
