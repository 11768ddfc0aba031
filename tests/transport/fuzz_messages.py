"""Structure-aware mutations of actor -> learner messages: valid envelopes with one thing wrong (a
field's type, range or length; a transition's dtype, shape, keys or frame, or a reference to a
predecessor it cannot have; the size; truncated bytes). Every one is invalid, so a learner must
drop and count each."""

from __future__ import annotations

import msgpack
import numpy as np
from transport_helpers import INFO, SPEC, transition

from serl.transport.codec import TransitionCodec
from serl.transport.frames import FrameCodec
from serl.transport.messages import pack
from serl.transport.wire import ARRAY_EXT, JPEG_EXT, encode_array

CODEC = TransitionCodec(SPEC, FrameCodec(90))


def _transition_tree() -> dict:
    return msgpack.unpackb(CODEC.encode(transition(7)), raw=False)


def _bad_transition(rng: np.random.Generator) -> bytes:
    """One encoded transition with exactly one structural fault."""
    tree = _transition_tree()
    fault = int(rng.integers(12))
    field = str(rng.choice(["actions", "rewards", "episode_id", "policy_version", "step"]))
    if fault == 0:
        tree.pop(field)
    elif fault == 1:
        tree[f"extra_{rng.integers(1000)}"] = encode_array(np.float32(1))
    elif fault == 2:
        tree[field] = [1.5, "x", None, {}][rng.integers(4)]
    elif fault == 3:  # wrong dtype, right shape
        tree["actions"] = encode_array(np.zeros(3, [np.float64, np.int32, np.uint8,
                                                    np.bool_][rng.integers(4)]))
    elif fault == 4:  # wrong shape
        tree["actions"] = encode_array(np.zeros(int(rng.integers(4, 50)), np.float32))
    elif fault == 5:  # header says one thing, data is another length
        tree["actions"] = msgpack.ExtType(ARRAY_EXT,
                                          b"\x06<f4:3," + bytes(int(rng.integers(0, 11))))
    elif fault == 6:  # a frame of the wrong size, lossless or JPEG
        key = str(rng.choice(SPEC.camera_keys))
        wrong = np.zeros((int(rng.integers(1, 15)), 16, 3), np.uint8)
        tree["observations"][key] = (FrameCodec(None) if rng.integers(2)
                                     else FrameCodec(50)).encode(wrong)
    elif fault == 7:  # a JPEG whose header claims a huge frame
        data = bytearray(FrameCodec(90).encode(np.zeros((16, 16, 3), np.uint8)).data)
        at = data.index(b"\xff\xc0")
        data[at + 5:at + 9] = bytes(rng.integers(1, 256, 4, dtype=np.uint8))
        tree["next_observations"]["front"] = msgpack.ExtType(JPEG_EXT, bytes(data))
    elif fault == 8:
        tree["observations"]["state"] = msgpack.ExtType(int(rng.integers(3, 100)), b"\x00" * 20)
    elif fault == 9:
        tree["observations"] = {"state": tree["observations"]["state"]}
    elif fault == 10:  # a reference to the previous transition, from the first one (sequence 0)
        tree["observations"] = None
    else:  # observations that are neither a map nor a reference
        tree["observations"] = [True, 0, b"", "previous", []][rng.integers(5)]
    encoded = msgpack.packb(tree, use_bin_type=True)
    return encoded


def _batch(**override) -> bytes:
    fields = {"actor_id": "fuzz", "first_sequence": 0, "transitions": [CODEC.encode(transition(0))]}
    fields.update(override)
    return pack("batch", **fields)


def mutated_message(rng: np.random.Generator, max_bytes: int) -> list[bytes]:
    """The frames (after the DEALER's routing) of one invalid message."""
    family = int(rng.integers(12))
    if family == 0:  # a batch carrying one faulty transition
        return [_batch(transitions=[_bad_transition(rng)])]
    if family == 1:  # a good transition truncated
        data = CODEC.encode(transition(1))
        return [_batch(transitions=[data[:int(rng.integers(0, len(data)))]])]
    if family == 2:  # batch envelope fields of the wrong type or range
        key, value = [("actor_id", 5), ("actor_id", ""), ("actor_id", "real"),
                      ("first_sequence", -1), ("first_sequence", "0"), ("first_sequence", 1.5),
                      ("first_sequence", None), ("first_sequence", 2**63), ("transitions", []),
                      ("transitions", "x"), ("transitions", [1]), ("transitions",
                                                                   {"a": b"x"})][rng.integers(12)]
        return [_batch(**{key: value})]
    if family == 3:  # a missing or an extra field
        fields = {"kind": "batch", "actor_id": "fuzz", "first_sequence": 0, "transitions": [b"x"]}
        if rng.integers(2):
            fields.pop(str(rng.choice(["kind", "actor_id", "first_sequence", "transitions"])))
        else:
            fields["extra"] = 1
        return [msgpack.packb(fields, use_bin_type=True)]
    if family == 4:  # any message, truncated
        data = _batch()
        return [data[:int(rng.integers(0, len(data)))]]
    # over the size limit (under the socket's hard limit, so it is received and counted)
    if family == 5:
        return [_batch(transitions=[b"\x00" * int(max_bytes * rng.uniform(1.01, 1.5))])]
    if family == 6:  # too many transitions
        return [_batch(transitions=[b"x"] * 4097)]
    if family == 7:  # unknown or learner-only kinds, or not a map
        return [[pack("nonsense"), pack("ack", last_sequence=1), pack("welcome", protocol=1,
                                                                      acked=0, info={},
                                                                      max_bytes=10),
                 msgpack.packb([1, 2, 3]), msgpack.packb("batch"), msgpack.packb(None), b"",
                 msgpack.packb({1: 2})][rng.integers(8)]]
    if family == 8:  # a bad hello
        fields = {"protocol": 1, "actor_id": "fuzz", "resume_from": 0, "info": INFO}
        key, value = [("protocol", "1"), ("actor_id", "x" * 201), ("resume_from", -5),
                      ("info", [1]),
                      ("info", {"k": [1, 2]}), ("info",
                                                {str(i): i for i in range(300)})][rng.integers(6)]
        return [pack("hello", **{**fields, key: value})]
    if family == 9:  # bad stats
        stats = [{"k": [1]}, {"k": {"a": 1}}, {"k": None}, {str(i): 1 for i in range(300)},
                 [1]][rng.integers(5)]
        return [pack("stats", stats=stats)]
    if family == 10:  # heartbeat or weights request with fields
        return [pack(str(rng.choice(["heartbeat", "weights_request"])),
                     extra=int(rng.integers(100)))]
    return [_batch(), _batch()]  # two frames in one message
