"""Segmentation networks: output stride, weight key layouts (torchvision ResNet-101,
psa resnet38_cls), parameter groups and frozen BatchNorm."""
import math

import pytest
import torch

from network import deeplab_largefov, deeplab_v2, resnet38_cls
from network.resnet101 import ResNet101

SMALL = 0.125  # channel width used for the forward passes


def torchvision_resnet101_shapes():
    """Every state-dict entry of torchvision's `resnet101()` (1000 classes), written out
    from the published architecture: 7×7 stem, bottlenecks [3, 4, 23, 3] with widths
    64/128/256/512 and expansion 4, `downsample.0/1` on each layer's first block, fc."""
    shapes = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix, ch):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (ch,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    bn("bn1", 64)
    in_ch = 64
    for layer, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 23, 3)), 1):
        for b in range(blocks):
            p = f"layer{layer}.{b}"
            shapes[f"{p}.conv1.weight"] = (planes, in_ch, 1, 1)
            bn(f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if b == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes * 4, in_ch, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)
            in_ch = planes * 4
    shapes["fc.weight"] = (1000, 2048)
    shapes["fc.bias"] = (1000,)
    return shapes


def test_written_out_layout_is_resnet101():
    shapes = torchvision_resnet101_shapes()
    params = sum(math.prod(s) for k, s in shapes.items()
                 if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert len(shapes) == 626
    assert params == 44_549_160  # torchvision's published ResNet-101 parameter count


def test_torchvision_resnet101_weights_load_into_deeplab_v2():
    shapes = torchvision_resnet101_shapes()
    gen = torch.Generator().manual_seed(0)
    state = {k: (torch.zeros(s, dtype=torch.long) if k.endswith("num_batches_tracked")
                 else torch.randn(s, generator=gen)) for k, s in shapes.items()}
    net = deeplab_v2.Net()
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == [f"aspp.c{i}.{n}" for i in range(4) for n in ("weight", "bias")]
    assert result.unexpected_keys == ["fc.weight", "fc.bias"]
    ours = net.state_dict()
    for key in ("conv1.weight", "layer3.22.conv2.weight", "layer4.0.downsample.1.running_var"):
        assert torch.equal(ours[key], state[key]), key


def test_res38_cls_weights_load_into_largefov():
    cls = resnet38_cls.Net(width=SMALL)
    for p in cls.parameters():
        torch.nn.init.normal_(p)
    net = deeplab_largefov.Net(width=SMALL)
    result = net.load_state_dict(cls.state_dict(), strict=False)
    assert sorted(result.missing_keys) == sorted(
        f"fc8_seg_conv{i}.{n}" for i in (1, 2) for n in ("weight", "bias"))
    assert result.unexpected_keys == ["fc8.weight"]
    ours = net.state_dict()
    for key, value in cls.state_dict().items():
        if key != "fc8.weight":
            assert torch.equal(ours[key], value), key


@pytest.mark.parametrize("make", [deeplab_largefov.Net, deeplab_v2.Net])
def test_logits_at_output_stride_8(make):
    net = make(num_classes=5, width=SMALL).eval()
    with torch.inference_mode():
        out = net(torch.randn(2, 3, 45, 61))  # odd sizes: each stride-2 step rounds up
    assert out.shape == (2, 5, math.ceil(45 / 8), math.ceil(61 / 8))
    assert torch.isfinite(out).all()


def test_deeplab_v2_dilates_layer3_and_layer4():
    net = ResNet101(width=SMALL)
    assert net.layer2[0].conv2.stride == (2, 2)
    for layer, dilation in ((net.layer3, 2), (net.layer4, 4)):
        assert all(b.conv2.stride == (1, 1) and b.conv2.dilation == (dilation,) * 2
                   for b in layer)
    assert [c.dilation[0] for c in deeplab_v2.Net(width=SMALL).aspp.children()] == [6, 12, 18, 24]


def test_aspp_sums_its_branches():
    aspp = deeplab_v2.ASPP(8, 3)
    x = torch.randn(1, 8, 30, 30)
    expected = sum(torch.nn.functional.conv2d(x, c.weight, c.bias, padding=c.padding,
                                              dilation=c.dilation) for c in aspp.children())
    torch.testing.assert_close(aspp(x), expected)


@pytest.mark.parametrize("make", [deeplab_largefov.Net, deeplab_v2.Net])
def test_parameter_groups_put_the_head_at_10x(make):
    net = make(width=SMALL)
    groups = net.get_parameter_groups()
    head = {id(p) for layer in net.from_scratch_layers for p in layer.parameters()}
    assert {id(p) for p in groups[2] + groups[3]} == head
    assert not head & {id(p) for p in groups[0] + groups[1]}
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert sum(len(g) for g in groups) == len(trainable)
    assert all(p.ndim == 1 for p in groups[1] + groups[3])  # biases


@pytest.mark.parametrize("make", [deeplab_largefov.Net, deeplab_v2.Net])
def test_frozen_bn_option(make):
    frozen = make(width=SMALL).train()
    bns = [m for m in frozen.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training and not m.weight.requires_grad for m in bns)
    live = make(width=SMALL, freeze_bn=False).train()
    bns = [m for m in live.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.training and m.weight.requires_grad for m in bns)
    in_groups = {id(p) for g in live.get_parameter_groups() for p in g}
    assert all(id(m.weight) in in_groups for m in bns)
