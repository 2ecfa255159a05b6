"""MXNet .params reader (real files + hand-written files in each layout) and the ResNet-38
ImageNet name mapping."""
import json
import struct

import numpy as np
import pytest
import torch

from golden import TESTDATA, needs_testdata
from network import resnet38d
from tool.core.io import InputError
from tool.core.mxnet_params import (LIST_MAGIC, V1_MAGIC, V2_MAGIC, V3_MAGIC, read_mxnet_params,
                                    resnet38_state_dict_from_mxnet)

MXNET_DIR = TESTDATA / "mxnet"
FLAGS = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.float16): 2,
         np.dtype(np.uint8): 3, np.dtype(np.int32): 4, np.dtype(np.int64): 6}
CPU, GPU = 1, 2


def encode_array(array, layout, dev_type=CPU):
    """One NDArray record as MXNet writes it ('legacy', 'v1', 'v2' or 'v3')."""
    array = np.asarray(array)
    if layout == "legacy":
        head = struct.pack(f"<I{array.ndim}I", array.ndim, *array.shape)
    else:
        magic = {"v1": V1_MAGIC, "v2": V2_MAGIC, "v3": V3_MAGIC}[layout]
        storage = b"" if layout == "v1" else struct.pack("<i", 0)
        head = struct.pack("<I", magic) + storage + struct.pack(
            f"<i{array.ndim}q", array.ndim, *array.shape)
    head += struct.pack("<iii", dev_type, 0, FLAGS[array.dtype])
    return head + array.astype(array.dtype.newbyteorder("<")).tobytes()


def encode_params(named_arrays, layout):
    body = struct.pack("<QQQ", LIST_MAGIC, 0, len(named_arrays))
    body += b"".join(encode_array(a, layout) for a in named_arrays.values())
    body += struct.pack("<Q", len(named_arrays))
    for name in named_arrays:
        raw = name.encode("utf-8")
        body += struct.pack("<Q", len(raw)) + raw
    return body


def write_params(path, named_arrays, layout="legacy"):
    path.write_bytes(encode_params(named_arrays, layout))
    return path


def small_arrays():
    rs = np.random.RandomState(0)
    return {"arg:conv1a_weight": rs.standard_normal((4, 3, 3, 3)).astype(np.float32),
            "arg:bias_f64": rs.standard_normal(5),
            "aux:count_i64": np.arange(6, dtype=np.int64).reshape(2, 3),
            "arg:half": np.linspace(-1, 1, 7).astype(np.float16),
            "arg:bytes": np.arange(10, dtype=np.uint8)}


@needs_testdata
@pytest.mark.parametrize("filename", ["det1-0001.params", "det2-0001.params"])
def test_real_legacy_files_match_expected(filename):
    expected = json.loads((MXNET_DIR / "expected.json").read_text())[filename]
    params = read_mxnet_params(MXNET_DIR / filename)
    assert list(params) == [e["name"] for e in expected]
    for entry in expected:
        array = params[entry["name"]]
        assert list(array.shape) == entry["shape"], entry["name"]
        assert str(array.dtype) == entry["dtype"], entry["name"]
        np.testing.assert_allclose(array.astype(np.float64).sum(), entry["sum"], rtol=1e-10)
        assert float(array.ravel()[0]) == entry["first"], entry["name"]


@pytest.mark.parametrize("layout", ["legacy", "v1", "v2", "v3"])
def test_handwritten_layouts_round_trip(tmp_path, layout):
    arrays = small_arrays()
    params = read_mxnet_params(write_params(tmp_path / "x.params", arrays, layout))
    assert list(params) == list(arrays)
    for name, array in arrays.items():
        assert params[name].dtype == array.dtype
        np.testing.assert_array_equal(params[name], array)
    assert params["arg:conv1a_weight"].flags.writeable  # torch.from_numpy needs this


def test_v3_scalar_and_gpu_saved_array(tmp_path):
    body = struct.pack("<QQQ", LIST_MAGIC, 0, 2)
    body += encode_array(np.array(2.5, np.float32), "v3")
    body += encode_array(np.ones((2, 2), np.float32), "v2", dev_type=GPU)
    body += struct.pack("<Q", 2) + b"".join(struct.pack("<Q", 1) + n for n in (b"s", b"g"))
    (tmp_path / "s.params").write_bytes(body)
    params = read_mxnet_params(tmp_path / "s.params")
    assert params["s"].shape == () and float(params["s"]) == 2.5
    np.testing.assert_array_equal(params["g"], np.ones((2, 2), np.float32))


def _damaged(tmp_path, mutate):
    data = bytearray(encode_params(small_arrays(), "v2"))
    path = tmp_path / "bad.params"
    path.write_bytes(bytes(mutate(data)))
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d[:len(d) // 2], "truncated"),
    (lambda d: d[:20], "truncated"),
    (lambda d: b"\x13" + d[1:], "not an MXNet params file"),
    (lambda d: d + b"\0", "data after the name list"),
    (lambda d: d[:24] + struct.pack("<I", 0xDEADBEEF) + d[28:], "unknown array header"),
    (lambda d: d[:28] + struct.pack("<i", 1) + d[32:], "sparse storage"),
    (lambda d: b"", "truncated"),
])
def test_damaged_files_raise_one_line_naming_the_file(tmp_path, mutate, message):
    path = _damaged(tmp_path, mutate)
    with pytest.raises(InputError) as err:
        read_mxnet_params(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.params: cannot open"):
        read_mxnet_params(tmp_path / "nope.params")


# The inverse of psa's convert_mxnet_to_torch, written from the naming of the ImageNet file.
MX_BN = {"weight": "arg:{}_gamma", "bias": "arg:{}_beta", "running_mean": "aux:{}_moving_mean",
         "running_var": "aux:{}_moving_var"}


def mxnet_name(key):
    """'b4_1.bn_branch2a.weight' → 'arg:bn4b1_branch2a_gamma' etc.; None if not stored."""
    parts = key.split(".")
    if parts[-1] == "num_batches_tracked":
        return None
    if key == "conv1a.weight":
        return "arg:conv1a_weight"
    if parts[0] == "bn7":
        return MX_BN[parts[1]].format("bn7")
    stage, _, index = parts[0][1:].partition("_")
    unit = f"{stage}a" if not index else f"{stage}b{index}"
    layer, branch = parts[1].split("_", 1)
    if layer == "conv":
        return f"arg:res{unit}_{branch}_weight"
    return MX_BN[parts[2]].format(f"bn{unit}_{branch}")


def fake_imagenet_params(state_dict, make_value):
    params = {"arg:linear1000_weight": np.zeros((1000, 8), np.float32),
              "arg:linear1000_bias": np.zeros(1000, np.float32)}
    for key, tensor in state_dict.items():
        name = mxnet_name(key)
        if name is not None:
            params[name] = make_value(key, tuple(tensor.shape))
    return params


def test_mapping_produces_every_full_size_trunk_key():
    with torch.device("meta"):
        reference = resnet38d.Net().state_dict()
    params = fake_imagenet_params(
        reference, lambda key, shape: np.broadcast_to(np.zeros((), np.float32), shape))
    assert "arg:res4b1_branch2a_weight" in params and "aux:bn7_moving_var" in params
    state = resnet38_state_dict_from_mxnet(params)
    expected = {k: tuple(v.shape) for k, v in reference.items()
                if not k.endswith("num_batches_tracked")}
    assert {k: tuple(v.shape) for k, v in state.items()} == expected


def test_mapping_moves_each_value_to_its_key():
    reference = resnet38d.Net(width=0.125).state_dict()
    tag = {key: float(i) for i, key in enumerate(reference)}
    params = fake_imagenet_params(reference,
                                  lambda key, shape: np.full(shape, tag[key], np.float32))
    state = resnet38_state_dict_from_mxnet(params)
    for key in ("conv1a.weight", "b2.conv_branch1.weight", "b4_1.conv_branch2a.weight",
                "b4_1.bn_branch2a.weight", "b6.bn_branch2b2.running_var", "bn7.bias"):
        assert np.all(state[key] == tag[key]), key
    assert all(np.all(v == tag[k]) for k, v in state.items())


@needs_testdata
def test_mapping_rejects_a_non_resnet38_file():
    params = read_mxnet_params(MXNET_DIR / "det1-0001.params")
    with pytest.raises(InputError, match=r"^det1: parameter 'arg:\w+' is not a ResNet-38"):
        resnet38_state_dict_from_mxnet(params, source="det1")


def test_mapping_rejects_two_names_for_one_key():
    params = {"arg:bn7_gamma": np.ones(2, np.float32), "arg:bn8_gamma": np.ones(2, np.float32)}
    with pytest.raises(InputError, match="map twice onto 'bn7.weight'"):
        resnet38_state_dict_from_mxnet(params, source="f.params")
