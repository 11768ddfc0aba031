"""How `RobotClient` reads a refusal: its prefix picks the exception, so the env retries what is
worth retrying (busy, unsettled) and raises the rest. A real ZeroMQ ROUTER on loopback answers
as the robot server does."""

from __future__ import annotations

import threading

import pytest
import zmq

from serl.envs.franka_faults import TRANSIENT
from serl.ports import free_port
from serl.robot import protocol
from serl.robot.client import RobotBusy, RobotClient, RobotError, RobotFault, RobotUnsettled

REPLIES = [
    ("busy: reset in progress", False, RobotBusy),
    ("unsettled: reset did not reach the pose within 6.3 s (position error 0.0112 m)", False,
     RobotUnsettled),
    ("robot in fault: reflex", True, RobotFault),
    ("pose: expected 7 numbers", False, RobotError),
]


def answer(router: zmq.Socket, replies: list[tuple[str, bool, type]]) -> None:
    for error, fault, _ in replies:
        identity, data = router.recv_multipart()
        request = protocol.decode_request(data, 1 << 20)
        router.send_multipart([identity, protocol.encode_reply(request.id, error=error,
                                                               fault=fault)])


@pytest.mark.timeout(30)
def test_each_refusal_prefix_raises_its_exception_and_only_busy_and_unsettled_are_retried():
    address = f"tcp://127.0.0.1:{free_port()}"
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(address)
    server = threading.Thread(target=answer, args=(router, REPLIES), daemon=True)
    server.start()
    client = RobotClient(address, timeout_s=5.0)
    try:
        for error, _, kind in REPLIES:
            with pytest.raises(RobotError, match=error[:20]) as raised:
                client.request("reset", {})
            assert type(raised.value) is kind
            assert isinstance(raised.value, TRANSIENT) == (kind in (RobotBusy, RobotUnsettled))
    finally:
        client.close()
        server.join(timeout=5)
        router.close()
