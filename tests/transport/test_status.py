"""The learner's `status` message (protocol 3): published on the learner, it reaches each actor
after its next heartbeat, over real loopback sockets and in process alike; a malformed one is
refused by the schema, naming the field."""

import time

import pytest
from transport_helpers import make_actor, make_learner, wait_until

from serl.transport import messages as m
from serl.transport.inprocess import InProcessTransport
from serl.transport.interfaces import LearnerStatus, StatusPublisher, StatusSource
from serl.transport.wire import BadMessage

STATUS = LearnerStatus({"updates": 12, "updates_per_s": 3.5, "ready": True},
                       evals=((100.0, 0.2), (200.0, 0.6)), train=((10.0, 1.0, 0.5),))


@pytest.mark.timeout(20)
def test_the_status_reaches_the_actor(tmp_path):
    learner = make_learner()
    actor = make_actor(learner, "a", tmp_path / "spool")
    try:
        assert isinstance(learner, StatusPublisher) and isinstance(actor, StatusSource)
        assert actor.learner_status() is None
        learner.publish_status(STATUS)
        assert wait_until(lambda: actor.learner_status() is not None, 5)
        arrived, status = actor.learner_status()
        assert status == STATUS and time.monotonic() - arrived < 5
        learner.publish_status(LearnerStatus({"updates": 13}))
        assert wait_until(lambda: actor.learner_status()[1].status == {"updates": 13}, 5)
    finally:
        actor.close()
        learner.close()


def test_in_process_status():
    status = InProcessTransport().status
    assert isinstance(status, StatusPublisher) and isinstance(status, StatusSource)
    assert status.learner_status() is None
    status.publish_status(STATUS)
    assert status.learner_status()[1] is STATUS


def test_the_status_message_is_checked():
    kind, fields = m.parse(m.status_message(STATUS), m.LEARNER_MESSAGES, 1 << 20)
    assert kind == "status" and m.status_of(fields) == STATUS
    long = LearnerStatus({}, evals=tuple((float(k), 0.5) for k in range(100)))
    assert len(m.parse(m.status_message(long), m.LEARNER_MESSAGES, 1 << 20)[1]["evals"]) == 64
    bad = [m.pack("status", status={}, evals=[[1.0]], train=[]),
           m.pack("status", status={}, evals=[], train=[[1, 2, "x"]]),
           m.pack("status", status={"k": [1]}, evals=[], train=[]),
           m.pack("status", status={}, evals=[])]
    for data, says in zip(bad, ["status.evals[0]", "status.train[0]", "status.status/k",
                                "fields"], strict=True):
        with pytest.raises(BadMessage, match=says.replace("[", r"\[").replace("]", r"\]")):
            m.parse(data, m.LEARNER_MESSAGES, 1 << 20)
