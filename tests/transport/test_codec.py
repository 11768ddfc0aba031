"""The wire codec: round trips, determinism of JPEG frames, and validated decoding that only ever
raises BadMessage."""

import msgpack
import numpy as np
import pytest
from transport_helpers import INFO, SPEC, transition

from serl.transport import messages as m
from serl.transport.codec import TransitionCodec
from serl.transport.frames import FrameCodec, jpeg_roundtrip
from serl.transport.interfaces import WeightsVersion
from serl.transport.params_codec import ParamsDecoder, encode_params
from serl.transport.wire import ALLOWED_DTYPES, JPEG_EXT, BadMessage, decode_array, encode_array


def _assert_trees_equal(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_trees_equal(a[k], b[k])
    else:
        assert (
            np.asarray(a).dtype == np.asarray(b).dtype
            and np.asarray(a).shape == np.asarray(b).shape
        )
        np.testing.assert_array_equal(a, b)


@pytest.mark.timeout(10)
def test_arrays_round_trip_every_allowed_dtype_and_shape():
    for dtype in ALLOWED_DTYPES.values():
        for shape in [(), (0,), (3,), (2, 3, 4)]:
            array = (np.arange(int(np.prod(shape))) % 2).astype(dtype).reshape(shape)
            back = decode_array(encode_array(array), shape, dtype, "x")
            assert back.dtype == dtype and back.shape == shape and not back.flags.writeable
            np.testing.assert_array_equal(back, array)
    with pytest.raises(ValueError):
        encode_array(np.array(["text"]))


@pytest.mark.timeout(10)
def test_lossless_transitions_round_trip_exactly():
    codec = TransitionCodec(SPEC, FrameCodec(None))
    original = transition(3)
    decoded = codec.decode(codec.encode(original))
    _assert_trees_equal(decoded, original)
    assert SPEC.problems(decoded) == []
    assert isinstance(decoded["rewards"], np.float32) and isinstance(decoded["dones"], np.bool_)


@pytest.mark.timeout(10)
def test_jpeg_frames_decode_to_what_the_policy_was_shown_and_shared_frames_stay_identical():
    codec = TransitionCodec(SPEC, FrameCodec(80))
    t0, t1 = transition(4), transition(5)
    assert codec.encode(t0) == codec.encode(transition(4))  # deterministic: same frames, same bytes
    d0, d1 = codec.decode(codec.encode(t0)), codec.decode(codec.encode(t1))
    for key in SPEC.camera_keys:
        np.testing.assert_array_equal(
            d0["observations"][key], jpeg_roundtrip(t0["observations"][key], 80)
        )
        # stored once
        assert d0["next_observations"][key].tobytes() == d1["observations"][key].tobytes()
        seen = FrameCodec(80).roundtrip(t0["observations"][key])  # what the policy sees
        np.testing.assert_array_equal(seen, d0["observations"][key])
    # state is exact
    np.testing.assert_array_equal(d0["observations"]["state"], t0["observations"]["state"])
    lossy = np.abs(d0["observations"]["front"].astype(int) - t0["observations"]["front"]).max()
    assert 0 < lossy < 40
    assert len(codec.encode(t0)) < len(TransitionCodec(SPEC, FrameCodec(None)).encode(t0))


@pytest.mark.timeout(10)
def test_a_camera_buffer_refilled_in_place_is_encoded_afresh():
    codec, fresh = TransitionCodec(SPEC, FrameCodec(90)), TransitionCodec(SPEC, FrameCodec(90))
    buffer = transition(0)["observations"]["front"].copy()
    t = transition(0)
    t["observations"]["front"] = buffer
    first = codec.encode(t)
    buffer[:] = transition(9)["observations"]["front"]  # same array object, new content
    assert codec.encode(t) == fresh.encode(t) != first


@pytest.mark.timeout(10)
def test_encode_refuses_transitions_that_do_not_match_the_spec():
    codec = TransitionCodec(SPEC)
    bad = transition(0)
    bad["rewards"] = 1.0  # a Python float, not float32
    bad["observations"]["front"] = bad["observations"]["front"][:8]
    with pytest.raises(ValueError, match="rewards") as e:
        codec.encode(bad)
    assert "observations/front" in str(e.value)


def _tree(codec, t):
    return msgpack.unpackb(codec.encode(t), raw=False)


def _forged_jpeg(height, width):
    """A JPEG whose frame header claims height x width (the scan data is for 16 x 16)."""
    data = bytearray(FrameCodec(90).encode(np.zeros((16, 16, 3), np.uint8)).data)
    i = data.index(b"\xff\xc0")
    data[i + 5 : i + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return msgpack.ExtType(JPEG_EXT, bytes(data))


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "mutate, category",
    [
        (lambda t: t.pop("rewards"), "transition"),
        (lambda t: t.update(extra=encode_array(np.float32(1))), "transition"),
        (lambda t: t.update(rewards=1.5), "transition"),
        (lambda t: t.update(rewards=encode_array(np.float64(1.5))), "transition"),
        (lambda t: t.update(actions=encode_array(np.zeros(4, np.float32))), "transition"),
        (lambda t: t.update(actions=msgpack.ExtType(1, b"\x05<f4:3" + b"\0" * 11)), "transition"),
        (lambda t: t.update(actions=msgpack.ExtType(1, b"\x09|O:3" + b"\0" * 24)), "transition"),
        (lambda t: t.update(actions=msgpack.ExtType(9, b"")), "transition"),
        (
            lambda t: t["observations"].update(front=encode_array(np.zeros((8, 16, 3), np.uint8))),
            "transition",
        ),
        (lambda t: t["observations"].update(front=_forged_jpeg(60000, 60000)), "jpeg"),
        (
            lambda t: t["observations"].update(
                front=msgpack.ExtType(JPEG_EXT, b"\xff\xd8garbage\xff\xd9")
            ),
            "jpeg",
        ),
        (
            lambda t: t["observations"].update(
                front=msgpack.ExtType(JPEG_EXT, t["observations"]["front"].data[:-9])
            ),
            "jpeg",
        ),
        (lambda t: t.update(observations=[1, 2]), "transition"),
    ],
)
def test_decode_rejects_each_kind_of_damage(mutate, category):
    codec = TransitionCodec(SPEC, FrameCodec(90))
    tree = _tree(codec, transition(1))
    mutate(tree)
    with pytest.raises(BadMessage) as e:
        codec.decode(msgpack.packb(tree, use_bin_type=True))
    assert e.value.category == category


@pytest.mark.timeout(10)
def test_decode_checks_size_before_decoding_and_survives_truncation():
    codec = TransitionCodec(SPEC, FrameCodec(None), max_bytes=1000)
    data = TransitionCodec(SPEC, FrameCodec(None)).encode(transition(1))
    with pytest.raises(BadMessage, match="size"):
        codec.decode(data)
    big = TransitionCodec(SPEC, FrameCodec(None))
    for cut in range(0, len(data), 97):
        with pytest.raises(BadMessage):
            big.decode(data[:cut])
    for bad in ("text", None, 5, msgpack.packb(7), msgpack.packb([1] * 10), b"\xc1"):
        with pytest.raises(BadMessage):
            big.decode(bad)


@pytest.mark.timeout(20)
def test_random_byte_flips_only_ever_raise_bad_message():
    rng = np.random.default_rng(0)
    codec = TransitionCodec(SPEC, FrameCodec(90))
    data = bytearray(codec.encode(transition(2)))
    outcomes = {"ok": 0, "bad": 0}
    for _ in range(2000):
        mutated = bytearray(data)
        for at in rng.integers(0, len(data), rng.integers(1, 4)):
            mutated[at] = rng.integers(0, 256)
        try:
            codec.decode(bytes(mutated))
            outcomes["ok"] += 1  # e.g. a flipped pixel inside the JPEG scan: still a valid frame
        except BadMessage:
            outcomes["bad"] += 1
    assert outcomes["bad"] > 500


@pytest.mark.timeout(10)
def test_messages_parse_and_every_field_is_checked():
    hello = m.pack("hello", protocol=1, actor_id="a", resume_from=0, info=INFO)
    assert m.parse(hello, m.ACTOR_MESSAGES, 1 << 20) == (
        "hello",
        {"protocol": 1, "actor_id": "a", "resume_from": 0, "info": INFO},
    )
    bad = [
        m.pack("hello", protocol=1, actor_id="a", resume_from=-1, info=INFO),
        m.pack("hello", protocol=1, actor_id="", resume_from=0, info=INFO),
        m.pack("hello", protocol=1, actor_id="a", resume_from=0, info={"k": [1]}),
        m.pack("hello", protocol=True, actor_id="a", resume_from=0, info=INFO),
        m.pack("batch", actor_id="a", first_sequence=0, transitions=[]),
        m.pack("batch", actor_id="a", first_sequence=0, transitions=["str"]),
        m.pack("batch", actor_id="a", first_sequence=2**63, transitions=[b"x"]),
        m.pack("heartbeat", extra=1),
        m.pack("ack", last_sequence=1),  # a learner message, not accepted from an actor
        m.pack("nonsense"),
        msgpack.packb([1, 2]),
        b"",
    ]
    for data in bad:
        with pytest.raises(BadMessage):
            m.parse(data, m.ACTOR_MESSAGES, 1 << 20)
    with pytest.raises(BadMessage, match="size"):
        m.parse(hello, m.ACTOR_MESSAGES, 10)


@pytest.mark.timeout(10)
def test_handshake_differences_name_the_field():
    other = m.spec_info(
        SPEC.__class__(
            {
                "state": ((5,), np.float32),
                "front": ((32, 32, 3), np.uint8),
                "wrist": ((16, 16, 3), np.uint8),
            },
            3,
        ),
        agent_config="cfg-hash-1",
    )
    diffs = m.differences(INFO, other, "learner", "actor")
    assert any(
        d.startswith(
            "spec.observations.front: actor 'uint8[32, 32, 3]', learner 'uint8[16, 16, 3]'"
        )
        for d in diffs
    )
    assert m.differences(INFO, dict(INFO), "learner", "actor") == []
    assert m.differences(INFO, {**INFO, "agent_config": "x"}, "l", "a") == [
        "agent_config: a 'x', l 'cfg-hash-1'"
    ]


def _params():
    return {
        "encoder": {
            "kernel": np.arange(12, dtype=np.float32).reshape(3, 4),
            "bias": np.zeros(4, np.float32),
        },
        "head": [np.ones((4, 2), np.float32), np.int32(3) * np.ones((), np.int32)],
    }


@pytest.mark.timeout(10)
def test_weights_round_trip_into_the_template_and_are_checked():
    params = _params()
    decoder = ParamsDecoder(params)
    back = decoder.decode(encode_params(params))
    assert isinstance(back["head"], list)
    _assert_trees_equal(back["encoder"], params["encoder"])
    np.testing.assert_array_equal(back["head"][0], params["head"][0])
    assert not back["encoder"]["kernel"].flags.writeable
    wrong = [
        {**params, "encoder": {**params["encoder"], "kernel": np.zeros((4, 3), np.float32)}},
        {**params, "encoder": {**params["encoder"], "bias": np.zeros(4, np.float64)}},
        {**params, "encoder": {"kernel": params["encoder"]["kernel"]}},
        {**params, "extra": np.zeros(1, np.float32)},
    ]
    for other in wrong:
        with pytest.raises(BadMessage, match="weights"):
            decoder.decode(encode_params(other))
    data = encode_params(params)
    for bad in (data[:-7], b"\x00" * 10, msgpack.packb({"encoder": 1}), "str"):
        with pytest.raises(BadMessage):
            decoder.decode(bad)
    with pytest.raises(BadMessage, match="size"):
        ParamsDecoder(params, max_bytes=100).decode(data)
    free = ParamsDecoder(None).decode(data)
    np.testing.assert_array_equal(free["head"]["0"], params["head"][0])
    assert WeightsVersion(0, 1) < WeightsVersion(1, 0)
