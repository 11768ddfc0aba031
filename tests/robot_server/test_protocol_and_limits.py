"""Pure parts of the robot server: the per-command step limit and the wire protocol's validation."""

import math
from pathlib import Path

import msgpack
import numpy as np
import pytest

from robot_servers.arm_control import limit_step
from serl import geometry as g
from serl.robot import protocol
from serl.transport.codec import BadMessage, encode_array

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(30)
def test_step_limit_bounds_translation_and_rotation():
    down = g.GRIPPER_DOWN_XYZW
    far_quat = g.quat_mul(g.rotvec_to_quat([0.0, 0.0, 1.0]), down)
    pos, quat = limit_step(
        np.array([0.9, 0.0, 0.2]), far_quat, np.array([0.5, 0.0, 0.2]), down, 0.05, 0.3
    )
    assert np.allclose(pos, [0.55, 0.0, 0.2]) and math.isclose(
        g.quat_angle(quat, down), 0.3, abs_tol=1e-9
    )
    near = np.array([0.51, 0.0, 0.2])
    pos, quat = limit_step(near, down, np.array([0.5, 0.0, 0.2]), down, 0.05, 0.3)
    # small steps pass unchanged
    assert np.array_equal(pos, near) and g.quat_angle(quat, down) < 1e-9


@pytest.mark.timeout(30)
def test_requests_round_trip_and_bad_ones_say_why():
    req = protocol.decode_request(
        protocol.encode_request(3, "set_pose", {"pose": np.arange(7.0)}), 1024
    )
    assert (req.id, req.op) == (3, "set_pose")
    assert np.array_equal(protocol.as_vector(req.args["pose"], 7, "pose"), np.arange(7.0))
    with pytest.raises(BadMessage, match="size"):
        protocol.decode_request(b"\x00" * 2048, 1024)
    with pytest.raises(protocol.RequestError, match="unknown argument") as err:
        protocol.decode_request(msgpack.packb({"id": 4, "op": "reset", "args": {"speed": 2}}), 1024)
    assert err.value.req_id == 4
    for bad, message in (
        ([1.0] * 6, "7 numbers"),
        ([1.0, True] + [0.0] * 5, "list of 7 numbers"),
        (encode_array(np.zeros(7, np.int64)), "expected"),
        ([math.inf] + [0.0] * 6, "infinity"),
        (np.zeros((7, 1)), "shape"),
    ):
        with pytest.raises(ValueError, match=message):
            protocol.as_vector(bad, 7, "pose")


@pytest.mark.timeout(30)
def test_state_replies_decode_to_float_arrays_and_refuse_malformed_ones():
    state = {k: np.zeros(shape) for k, shape in protocol.STATE_ARRAYS.items()}
    state.update(mode="ok", target=np.ones(7))
    reply = protocol.decode_reply(protocol.encode_reply(1, state))
    decoded = protocol.decode_state(reply["result"])
    assert decoded["tcp_pose"].shape == (7,) and decoded["target"].dtype == np.float64
    broken = dict(reply["result"], tcp_vel=encode_array(np.zeros(5)))
    with pytest.raises(BadMessage, match="tcp_vel"):
        protocol.decode_state(broken)
