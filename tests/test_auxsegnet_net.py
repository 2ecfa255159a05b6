"""AuxSegNet SegNet without golden data: flag combinations, the 1x/10x parameter split
and which parameters train."""
import pytest
import torch

from network.AuxSegNet import SegNet


@pytest.mark.parametrize("flags", [dict(require_seg=False), dict(require_cls=False),
                                   dict(require_sal=False),
                                   dict(require_seg=False, require_cls=False, require_sal=False)])
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
    assert "seg_att.theta.weight" in ten
    assert "cross_att.0.weight" in one and "b3.conv_branch2a.weight" in one
    assert all(any(s in n for s in ("seg", "sal", "fc8")) for n in ten)
    assert not any(any(s in n for s in ("seg", "sal", "fc8")) for n in one)
    # the frozen stem, batch norms and the unused non-local parameters are left out
    left_out = set(names.values()) - set(ten) - set(one)
    assert {"conv1a.weight", "seg_att.g.weight", "sal_att.W_z.0.weight", "bn7.weight"} <= left_out


def test_every_trainable_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = SegNet(width=0.125).train()
    out = net(torch.randn(2, 3, 48, 48))
    sum(o.float().sum() for o in out).backward()
    missing = [n for n, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


def test_width_keeps_key_names_and_scales_heads():
    full = SegNet(num_classes=5).state_dict()
    slim = SegNet(num_classes=5, width=0.125).state_dict()
    assert list(full) == list(slim)
    assert slim["seg_conv1.weight"].shape == (16, 512, 3, 3)
    assert slim["seg_conv4.weight"].shape == (5, 16, 1, 1)
    assert slim["fc8.weight"].shape == (4, 512, 1, 1)
