"""Actor <-> learner transport: transitions and episode stats one way, policy weights the other.

The contracts are in `interfaces`; `InProcessTransport` runs both ends in one process (tests, `make
demo`); the ZeroMQ implementation runs them on different machines. Small fakes for unit tests are in
`fakes`.
"""

from serl.transport.inprocess import InProcessTransport
from serl.transport.interfaces import (
    Adder,
    Continues,
    IncomingBatch,
    Params,
    StatsSink,
    Transition,
    TransitionSource,
    VariableClient,
    VariableSource,
    WeightsPublisher,
    WeightsVersion,
)

__all__ = [
    "Adder",
    "Continues",
    "InProcessTransport",
    "IncomingBatch",
    "Params",
    "StatsSink",
    "Transition",
    "TransitionSource",
    "VariableClient",
    "VariableSource",
    "WeightsPublisher",
    "WeightsVersion",
]
