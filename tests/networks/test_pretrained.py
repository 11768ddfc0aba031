"""Pretrained trunk weights: the shared pickle converted through the real
`serl import-encoder` entry point, the msgpack format validated on load, and the rule that
nothing but the converter unpickles."""

# plays the role of whoever wrote the upstream file; the project itself never unpickles outside it
import pickle
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from serl.networks.config import EncoderConfig, MissingTrunkWeights
from serl.networks.encoders import ResNet10Trunk
from serl.networks.pretrained import convert_shared_pickle
from serl.networks.trunk import frozen_trunk, trunk_fingerprint
from serl.networks.trunk_weights import (
    expected_trunk_shapes,
    load_trunk_params,
    save_trunk_params,
)

ROOT = Path(__file__).resolve().parents[2]
# Upstream's names for our norms, varied per block as the published variants vary.
UPSTREAM_NORMS = [
    {"norm_0": "MyGroupNorm_0", "norm_1": "MyGroupNorm_1", "norm_proj": "norm_proj"},
    {"norm_0": "MyGroupNorm_0", "norm_1": "MyGroupNorm_1", "norm_proj": "MyGroupNorm_2"},
    {"norm_0": "GroupNorm_0", "norm_1": "GroupNorm_1", "norm_proj": "norm_proj"},
    {"norm_0": "GroupNorm_0", "norm_1": "GroupNorm_1", "norm_proj": "GroupNorm_2"},
]


def serl(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "serl.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def ours():
    """Random trunk parameters, flat, in the trunk's exact shapes (numpy draws: flax's init would
    run and compile the whole forward pass just to produce them). Norm scales and biases are random
    too, so a swap would show."""
    rng = np.random.default_rng(1)
    return {path: rng.normal(0, 0.05, shape).astype(np.float32)
            for path, shape in expected_trunk_shapes().items()}


def upstream(ours: dict, *, numpy_only=False) -> dict:
    """Our flat params -> a tree with the shared file's names, under "params", with a pooling head
    beside the trunk; blocks 0 and 2 hold jax arrays (pickles made on a GPU machine do)."""
    tree: dict = {}
    for (top, *rest), value in ours.items():
        if top.startswith("ResNetBlock_"):
            i = int(top[-1])
            rest[0] = UPSTREAM_NORMS[i].get(rest[0], rest[0])
            value = value if numpy_only or i % 2 else jnp.asarray(value)
        node = tree.setdefault(top, {})
        for key in rest[:-1]:
            node = node.setdefault(key, {})
        node[rest[-1]] = value
    tree["SpatialLearnedEmbeddings_0"] = {"kernel": np.zeros((4, 4, 512, 8), np.float32)}
    return {"params": tree}


def assert_same_bits(params: dict, ours: dict) -> None:
    flat = flatten_dict(params)
    assert sorted(flat) == sorted(ours)
    for path, value in flat.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value.view(np.uint32), ours[path].view(np.uint32),
                                      err_msg="/".join(path))


@pytest.mark.timeout(60)
def test_cli_converts_the_shared_pickle_bit_for_bit(tmp_path, ours):
    src, out = tmp_path / "resnet10_params.pkl", tmp_path / "converted" / "trunk.msgpack"
    out.parent.mkdir()
    src.write_bytes(pickle.dumps(upstream(ours)))

    run = serl("import-encoder", str(src), "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "arbitrary code" in run.stderr and "trust" in run.stderr
    assert "SpatialLearnedEmbeddings_0" in run.stderr  # the ignored head is noted
    assert str(out) in run.stdout and "pretrained-path" in run.stdout
    assert "frozen-trunk" in run.stdout
    # no temporary file left behind
    assert [p.name for p in out.parent.iterdir()] == ["trunk.msgpack"]

    params = load_trunk_params(out)
    assert_same_bits(params, ours)
    image = jax.random.randint(jax.random.PRNGKey(3), (2, 128, 128, 3), 0, 256).astype(jnp.uint8)
    apply = jax.jit(ResNet10Trunk().apply)
    converted = np.asarray(apply({"params": params}, image))
    np.testing.assert_array_equal(converted,
                                  np.asarray(apply({"params": flatten_dict_inverse(ours)}, image)))
    assert converted.shape == (2, 4, 4, 512)
    assert np.isfinite(converted).all() and converted.std() > 0

    # Overwriting is refused without --force (before anything is unpickled), and allowed with it.
    again = serl("import-encoder", str(src), "--out", str(out))
    assert again.returncode == 1 and "exists" in again.stderr and "--force" in again.stderr
    assert "arbitrary code" not in again.stderr
    forced = serl("import-encoder", str(src), "--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    assert_same_bits(load_trunk_params(out), ours)


def flatten_dict_inverse(flat: dict) -> dict:
    from flax.traverse_util import unflatten_dict

    return unflatten_dict(flat)


@pytest.mark.timeout(30)
def test_default_output_is_beside_the_input(tmp_path, ours):
    src = tmp_path / "resnet10_params.pkl"
    # also without the "params" level
    src.write_bytes(pickle.dumps(upstream(ours, numpy_only=True)["params"]))
    (tmp_path / "resnet10_params.msgpack").write_bytes(b"keep me")
    refused = serl("import-encoder", str(src))
    assert refused.returncode == 1 and "resnet10_params.msgpack exists" in refused.stderr
    assert (tmp_path / "resnet10_params.msgpack").read_bytes() == b"keep me"
    (tmp_path / "resnet10_params.msgpack").unlink()
    from serl.networks.pretrained import import_shared_weights

    import_shared_weights(src, tmp_path / "resnet10_params.msgpack", note=lambda _: None)
    assert_same_bits(load_trunk_params(tmp_path / "resnet10_params.msgpack"), ours)


@pytest.mark.timeout(30)
def test_wrong_shape_in_the_shared_file_is_named(tmp_path, ours):
    bad = dict(ours)
    bad["ResNetBlock_2", "Conv_1", "kernel"] = np.zeros((3, 3, 128, 256), np.float32)
    with pytest.raises(ValueError, match=re.escape("ResNetBlock_2/Conv_1/kernel: expected "
                                                   "(3, 3, 256, 256), got (3, 3, 128, 256)")):
        convert_shared_pickle(upstream(bad), note=lambda _: None)
    bad = dict(ours)
    bad["ResNetBlock_1", "norm_proj", "scale"] = np.zeros((64,), np.float32)
    with pytest.raises(ValueError, match=r"ResNetBlock_1/norm_proj/scale: expected \(128,\), "
                                         r"got \(64,\) \(named "
                                         r"ResNetBlock_1/MyGroupNorm_2/scale in the source\)"):
        convert_shared_pickle(upstream(bad), note=lambda _: None)

    src = tmp_path / "bad.pkl"
    src.write_bytes(pickle.dumps(upstream({**ours,
                                           ("conv_init", "kernel"): np.zeros((7, 7, 3, 32))})))
    run = serl("import-encoder", str(src), "--out", str(tmp_path / "bad.msgpack"))
    assert run.returncode == 1
    assert "conv_init/kernel: expected (7, 7, 3, 64), got (7, 7, 3, 32)" in run.stderr
    assert not (tmp_path / "bad.msgpack").exists()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("change, message", [
    (lambda p: p.pop(("ResNetBlock_3", "conv_proj", "kernel")),
     "ResNetBlock_3/conv_proj/kernel: missing"),
    (lambda p: p.update({("ResNetBlock_0", "conv_proj", "kernel"):
                         np.zeros((1, 1, 64, 64), np.float32)}),
     "ResNetBlock_0/conv_proj/kernel: unexpected parameter"),
    (lambda p: p.update({("norm_init", "scale"): np.ones(64, np.int32)}),
     "norm_init/scale: expected a float array"),
    (lambda p: p.update({("ResNetBlock_2", "Conv_1", "kernel"):
                         np.zeros((3, 3, 128, 256), np.float32)}),
     "ResNetBlock_2/Conv_1/kernel: expected (3, 3, 256, 256), got (3, 3, 128, 256)"),
], ids=["missing", "unexpected", "dtype", "shape"])
def test_load_names_the_first_mismatch(tmp_path, ours, change, message):
    bad = dict(ours)
    change(bad)
    save_trunk_params(tmp_path / "w.msgpack", flatten_dict_inverse(bad))
    with pytest.raises(ValueError, match=re.escape(message)):
        load_trunk_params(tmp_path / "w.msgpack")


@pytest.mark.timeout(30)
def test_load_refuses_a_file_that_is_not_msgpack_weights(tmp_path, ours):
    good = tmp_path / "good.msgpack"
    save_trunk_params(good, flatten_dict_inverse(ours))
    data = good.read_bytes()
    for name, content in [("truncated.msgpack", data[:len(data) // 2]),
                          ("garbage.msgpack", b"\x00\xc1garbage"), ("number.msgpack", b"\x07")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=re.escape(name)):
            load_trunk_params(tmp_path / name)
    params = load_trunk_params(good)
    assert_same_bits(params, ours)
    assert expected_trunk_shapes() == {path: v.shape for path, v in ours.items()}


@pytest.mark.timeout(30)
def test_frozen_params_plug_into_the_encoder(tmp_path, ours):
    path = tmp_path / "w.msgpack"
    save_trunk_params(path, flatten_dict_inverse(ours))
    cfg = EncoderConfig(image_keys=("front",), trunk="resnet10", frozen_trunk=True,
                        pretrained_path=str(path))
    frozen = frozen_trunk(cfg)
    images = jnp.zeros((1, 128, 128, 3), jnp.uint8)
    init = jax.eval_shape(ResNet10Trunk().init, jax.random.PRNGKey(0), images)["params"]
    assert jax.tree.structure(frozen) == jax.tree.structure(init)
    spec = lambda a: (a.shape, a.dtype)
    assert jax.tree.map(spec, frozen) == jax.tree.map(spec, init)
    assert_same_bits(frozen, ours)
    assert trunk_fingerprint(cfg).startswith("sha256:")
    no_file = EncoderConfig(image_keys=("front",), trunk="resnet10", frozen_trunk=True)
    with pytest.raises(MissingTrunkWeights, match="serl import-encoder"):
        frozen_trunk(no_file)  # random features are a choice, never a silent default
    random = EncoderConfig(image_keys=("front",), trunk="resnet10", frozen_trunk=True,
                           random_frozen_trunk=True)
    assert jax.tree.structure(frozen_trunk(random)) == jax.tree.structure(init)
    assert trunk_fingerprint(random) != trunk_fingerprint(cfg)
    with pytest.raises(ValueError, match="random_frozen_trunk"):
        EncoderConfig(image_keys=("front",), frozen_trunk=True, random_frozen_trunk=True,
                      pretrained_path=str(path))
    assert frozen_trunk(EncoderConfig(image_keys=("front",))) is None
    with pytest.raises(ValueError, match="not supported yet"):
        frozen_trunk(EncoderConfig(image_keys=("front",), trunk="resnet10",
                                   pretrained_path=str(path)))


UNPICKLING = re.compile(r"\bpickle\.loads?\(|\bpickle\.Unpickler\b|\bfrom\s+pickle\s+import\b|"
                        r"\bread_pickle\(|\b(?:np|numpy)\.load\([^)]*allow_pickle\s*=\s*True")


@pytest.mark.timeout(10)
def test_nothing_but_the_converter_unpickles():
    hits = []
    for folder in ("serl", "robot_servers", "experiments"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            hits += [f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
                     for m in UNPICKLING.finditer(text)]
    assert len(hits) == 1 and hits[0].startswith("serl/networks/pretrained.py:"), hits
