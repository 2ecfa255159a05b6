"""Checkpoint reading/loading (released .pth shapes, MXNet ImageNet weights), the one-line
errors, atomic saving and the --resume training state."""
import os

import numpy as np
import pytest
import torch
import torch.nn as nn

from network import resnet38_cls, resnet38d
from test_mxnet_params import mxnet_name, write_params
from tool.core.checkpoint import (load_training_state, load_weights, read_checkpoint,
                                  save_checkpoint, save_training_state, summarise_keys)
from tool.core.io import InputError

WIDTH = 0.125


@pytest.fixture(scope="module")
def cls_state():
    torch.manual_seed(0)
    return resnet38_cls.Net(width=WIDTH).state_dict()


def fresh_cls(num_classes=20, width=WIDTH):
    return resnet38_cls.Net(num_classes=num_classes, width=width)


def assert_same_state(net, state):
    own = net.state_dict()
    for key, value in state.items():
        assert torch.equal(own[key], value), key


def one_line_error(call, path, *fragments):
    with pytest.raises(InputError) as err:
        call()
    text = str(err.value)
    assert text.startswith(f"{path}: ") and "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, text
    return text


@pytest.mark.parametrize("wrap", ["plain", "module", "state_dict", "model", "pre_0.4.1"])
def test_released_layouts_load_strictly(tmp_path, cls_state, capsys, wrap):
    saved = dict(cls_state)
    if wrap == "module":
        saved = {"module." + k: v for k, v in saved.items()}
    elif wrap in ("state_dict", "model"):
        saved = {wrap: saved, "epoch": 3}
    elif wrap == "pre_0.4.1":
        saved = {k: v for k, v in saved.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "res38_cls.pth"
    torch.save(saved, path)
    state = read_checkpoint(path)
    assert all(not k.startswith("module.") for k in state)
    net = fresh_cls()
    missing, unexpected = load_weights(net, path)
    assert missing == [] and unexpected == []
    assert_same_state(net, state)
    assert capsys.readouterr().out.strip() == f"{path}: loaded {len(state)} tensors"


def test_load_into_a_ddp_style_wrapper(tmp_path, cls_state):
    path = tmp_path / "w.pth"
    torch.save(cls_state, path)
    wrapped = nn.DataParallel(fresh_cls())
    load_weights(wrapped, path)
    assert_same_state(wrapped.module, cls_state)


def test_class_count_mismatch(tmp_path, cls_state):
    path = tmp_path / "coco.pth"
    state = dict(cls_state)
    state["fc8.weight"] = torch.zeros(80, *cls_state["fc8.weight"].shape[1:])
    torch.save(state, path)
    text = one_line_error(lambda: load_weights(fresh_cls(), path), path)
    assert text == (f"{path}: checkpoint has 80 classes (fc8.weight [80, 512, 1, 1]) "
                    "but the network has 20 — use --num_classes 80")
    # a head with num_classes - 1 rows (AuxSegNet's fc8) suggests the flag's value
    text = one_line_error(lambda: load_weights(fresh_cls(), path, num_classes=21), path)
    assert text.endswith("use --num_classes 81")


def test_width_mismatch_names_first_key_and_both_shapes(tmp_path, cls_state):
    path = tmp_path / "slim.pth"
    torch.save(cls_state, path)
    one_line_error(lambda: load_weights(fresh_cls(width=0.25), path), path,
                   "conv1a.weight is [8, 3, 3, 3] in the checkpoint but [16, 3, 3, 3]",
                   "--width")


@pytest.mark.parametrize("extra_keys, looks_like", [
    (("f8_3.weight", "f8_4.weight", "f8_5.weight", "f9.weight"), "AffinityNet"),
    (("fc8.weight", "seg_conv4.weight", "sal_conv1.weight", "sal_conv1.bias"), "AuxSegNet"),
])
def test_checkpoint_of_another_network(tmp_path, cls_state, extra_keys, looks_like):
    state = {k: v for k, v in cls_state.items() if k != "fc8.weight"}
    state.update({k: cls_state["fc8.weight"] for k in extra_keys})
    path = tmp_path / "other.pth"
    torch.save(state, path)
    one_line_error(lambda: load_weights(fresh_cls(), path), path,
                   f"checkpoint looks like {looks_like}",
                   "but the network is ResNet-38 classifier (network.resnet38_cls)")


def test_missing_head_needs_allow_missing(tmp_path, cls_state, capsys):
    trunk = {k: v for k, v in cls_state.items() if k != "fc8.weight"}
    path = tmp_path / "trunk.pth"
    torch.save(trunk, path)
    one_line_error(lambda: load_weights(fresh_cls(), path), path,
                   "looks like ResNet-38 trunk (network.resnet38d)", "missing 1 key (fc8.weight)")
    net = fresh_cls()
    head = net.fc8.weight.clone()
    missing, _ = load_weights(net, path, allow_missing=("fc8",))
    assert missing == ["fc8.weight"] and torch.equal(net.fc8.weight, head)
    assert_same_state(net, trunk)
    assert capsys.readouterr().out.strip().endswith("; missing 1 key (fc8.weight)")


def test_strict_load_names_missing_and_unexpected_keys(tmp_path, cls_state):
    state = {k: v for k, v in cls_state.items() if k != "b7.conv_branch1.weight"}
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "cls.pth"
    torch.save(state, path)
    one_line_error(lambda: load_weights(fresh_cls(), path), path,
                   "does not fit the network (missing 1 key (b7.conv_branch1.weight); "
                   "unexpected 1 key (extra.weight))")


def test_non_strict_partial_load_and_no_overlap(tmp_path, cls_state):
    path = tmp_path / "cls.pth"
    torch.save(cls_state, path)
    trunk = resnet38d.Net(width=WIDTH)
    missing, unexpected = load_weights(trunk, path, strict=False)
    assert missing == [] and unexpected == ["fc8.weight"]
    assert_same_state(trunk, {k: v for k, v in cls_state.items() if k != "fc8.weight"})
    foreign = tmp_path / "foreign.pth"
    torch.save({"layer4.0.conv1.weight": torch.zeros(1)}, foreign)
    one_line_error(lambda: load_weights(fresh_cls(), foreign, strict=False), foreign,
                   "looks like ResNet-101")


@pytest.mark.parametrize("content, message", [
    (None, "checkpoint not found"),
    (b"not a pickle at all", "unreadable checkpoint"),
    ([1, 2, 3], "not a state dict (got list)"),
    ({}, "not a state dict (got dict (empty))"),
    ({"a": 1.5}, "entry 'a' is a float"),
])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    one_line_error(lambda: read_checkpoint(path), path, message)


def test_mxnet_imagenet_weights_load_into_the_classifier(tmp_path):
    source = resnet38d.Net(width=WIDTH)
    rs = np.random.RandomState(1)
    arrays = {}
    for key, value in source.state_dict().items():
        name = mxnet_name(key)
        if name is not None:
            arrays[name] = rs.standard_normal(tuple(value.shape)).astype(np.float32)
    arrays["arg:linear1000_weight"] = np.zeros((1000, 512), np.float32)
    path = write_params(tmp_path / "ilsvrc-cls_rna-a1_cls1000_ep-0001.params", arrays)
    net = fresh_cls()
    missing, unexpected = load_weights(net, path, allow_missing=("fc8",))
    assert missing == ["fc8.weight"] and unexpected == []
    own = net.state_dict()
    for key in source.state_dict():
        name = mxnet_name(key)
        if name is not None:
            np.testing.assert_array_equal(own[key].numpy(), arrays[name], err_msg=key)
    truncated = tmp_path / "cut.params"
    truncated.write_bytes(path.read_bytes()[:5000])
    one_line_error(lambda: read_checkpoint(truncated), truncated, "truncated")


def test_save_checkpoint_is_plain_cpu_and_atomic(tmp_path, cls_state, monkeypatch):
    path = tmp_path / "out" / "w.pth"
    save_checkpoint(path, {"module." + k: v for k, v in cls_state.items()})
    assert os.listdir(path.parent) == ["w.pth"]
    assert list(torch.load(path, weights_only=True)) == list(cls_state)
    net = fresh_cls()
    load_weights(net, path)
    save_checkpoint(path, nn.DataParallel(net))
    assert list(torch.load(path, weights_only=True)) == list(cls_state)

    def save_half_then_fail(obj, f):
        f.write(b"partial")  # save_checkpoint hands torch.save an open temporary file
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, {"x": torch.zeros(1)})
    assert os.listdir(path.parent) == ["w.pth"]
    assert list(read_checkpoint(path)) == list(cls_state)


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


def trained(model):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(2, 3, 8, 8)).square().mean().backward()
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("wrap_saved, wrap_loaded", [(False, False), (True, False), (False, True)])
def test_training_state_round_trip(tmp_path, wrap_saved, wrap_loaded):
    model, optimizer = trained(small_model())
    path = tmp_path / "state.pth"
    saved_model = nn.DataParallel(model) if wrap_saved else model
    save_training_state(path, saved_model, optimizer, epoch=4, step=120, best_miou=0.625,
                        ids=["a", "b"])
    fresh = small_model()
    fresh_opt = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    target = nn.DataParallel(fresh) if wrap_loaded else fresh
    info = load_training_state(path, target, fresh_opt)
    assert info == {"epoch": 4, "step": 120, "extra": {"best_miou": 0.625, "ids": ["a", "b"]}}
    assert_same_state(fresh, model.state_dict())
    for p_old, p_new in zip(model.parameters(), fresh.parameters()):
        assert torch.equal(optimizer.state[p_old]["momentum_buffer"],
                           fresh_opt.state[p_new]["momentum_buffer"])
    assert list(read_checkpoint(path)) == list(model.state_dict())


def test_training_state_errors(tmp_path, cls_state):
    plain = tmp_path / "plain.pth"
    torch.save(cls_state, plain)
    model = small_model()
    one_line_error(lambda: load_training_state(plain, model, torch.optim.SGD(
        model.parameters(), lr=0.1)), plain, "not a training state file")
    model, optimizer = trained(small_model())
    path = tmp_path / "state.pth"
    save_training_state(path, model, optimizer, epoch=1, step=2)
    other = small_model()
    two_groups = torch.optim.SGD([{"params": list(other.parameters())[:2]},
                                  {"params": list(other.parameters())[2:]}], lr=0.1)
    one_line_error(lambda: load_training_state(path, other, two_groups), path,
                   "optimizer state does not fit this optimizer")


def test_summarise_keys_groups_by_module():
    keys = ["fc8.weight"] + [f"f8_3.{p}" for p in ("weight", "bias")] + [
        f"b{i}.x" for i in range(2, 8)]
    assert summarise_keys(keys) == ("9 keys (fc8.weight, f8_3.* (2), b2.x, b3.x, ...)")
    assert summarise_keys(["a.b"]) == "1 key (a.b)"
