"""AuxSegNet SegNet against the original code's outputs (golden case 3), its key
names, flag combinations and 1x/10x parameter split."""
import json

import numpy as np
import pytest
import torch

from golden import GOLDEN, assert_close, load_golden, load_recipe, needs_golden
from network.AuxSegNet import SegNet

OUTPUTS = ("x_cls", "cam", "init_sal", "refined_sal", "init_seg", "refined_seg", "cross_aff")
CROSS_AFF_RTOL = 5e-4  # golden README §5: |a-b| <= 5e-4 (|b| + max|b|)


@pytest.fixture(scope="module")
def net():
    return load_recipe(SegNet(num_classes=21))


@needs_golden
def test_key_order_matches_released_checkpoints():
    manifest = json.loads((GOLDEN / "weights_manifest.json").read_text())
    expected = manifest["state_dict_keys_in_order"]["auxsegnet.SegNet(num_classes=21)"]
    state = SegNet(num_classes=21, width=0.125).state_dict()
    assert list(state) == expected
    for key in ("seg_conv4.weight", "sal_conv4.weight", "fc8.weight", "cross_att.0.weight"):
        assert list(state[key].shape[:1]) == manifest["entries"][key]["shape"][:1]


@needs_golden
@pytest.mark.parametrize("case", ["s48x64", "s45x61", "b2_s40x56"])
def test_forward_with_cam_matches_original(net, case):
    g = load_golden("net_auxsegnet.npz")
    with torch.inference_mode():
        out = net(torch.from_numpy(g[f"{case}__input"]), require_cam=True)
    assert len(out) == len(OUTPUTS)
    for name, ours in zip(OUTPUTS[:-1], out[:-1]):
        assert_close(ours.numpy(), g[f"{case}__{name}"], name=f"{case} {name}")
    ref = g[f"{case}__cross_aff"].astype(np.float64)
    ours = out[-1].numpy().astype(np.float64)
    assert ours.shape == ref.shape
    assert np.all(np.abs(ours - ref) <= CROSS_AFF_RTOL * (np.abs(ref) + np.abs(ref).max()))


@needs_golden
def test_return_forms_agree(net):
    x = torch.from_numpy(load_golden("net_auxsegnet.npz")["s48x64__input"])
    with torch.inference_mode():
        full = net(x, require_cam=True)
        default = net(x)
        seg = net(x, require_cls=False, require_sal=False)
    assert len(default) == 5 and len(seg) == 2
    for a, b in zip(default, (full[0],) + full[2:6]):
        assert torch.equal(a, b)
    assert torch.equal(seg[0], full[4]) and torch.equal(seg[1], full[5])


@pytest.mark.parametrize("flags", [dict(require_seg=False), dict(require_cls=False),
                                   dict(require_sal=False), dict(require_seg=False, require_cls=False,
                                                                 require_sal=False)])
def test_unsupported_flag_combinations_raise(flags):
    net = SegNet(width=0.125).eval()
    with pytest.raises(ValueError, match="require_seg"):
        net(torch.zeros(1, 3, 32, 32), **flags)


def test_lr_split_follows_names():
    net = SegNet(width=0.125)
    names = {id(p): n for n, p in net.named_parameters()}
    ten = [names[id(p)] for p in net.get_10x_lr_params()]
    one = [names[id(p)] for p in net.get_1x_lr_params()]
    assert "fc8.weight" in ten and "seg_conv1.weight" in ten and "sal_W.bias" in ten
    assert "cross_att.0.weight" in one and "b3.conv_branch2a.weight" in one
    assert all(any(s in n for s in ("seg", "sal", "fc8")) for n in ten)
    assert not any(any(s in n for s in ("seg", "sal", "fc8")) for n in one)
    # frozen stem, batch norms and the unused non-local parameters are left out
    left_out = set(names.values()) - set(ten) - set(one)
    assert "conv1a.weight" in left_out and "seg_att.g.weight" in left_out
    assert "seg_att.theta.weight" in ten


def test_unused_parameters_get_no_gradient():
    torch.manual_seed(0)
    net = SegNet(width=0.125).train()
    out = net(torch.randn(2, 3, 48, 48))
    sum(o.float().sum() for o in out).backward()
    for name, p in net.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name} is trainable but unused"
