"""ResNet-101 (He et al. 2016) as the DeepLab-v2 backbone, written in this project (no
torchvision). Key names follow the common torchvision layout (`conv1.weight`, `bn1.*`,
`layer1.0.conv1.weight`, `layer1.0.downsample.0.weight`, ...), so ImageNet weights saved
in that layout load directly; their `fc.*` entries are simply not used.

Output stride 8 as in DeepLab-v2: layer3 and layer4 keep stride 1 and use dilation 2 and
4. The stride of a bottleneck sits on its 3×3 convolution (torchvision's placement).
`width` scales every channel count (1.0 = paper) with the key names kept."""
import torch.nn as nn
import torch.nn.functional as F

from network.resnet38d import scaled

BLOCKS_PER_LAYER = (3, 4, 23, 3)  # ResNet-101
PLANES = (64, 128, 256, 512)  # bottleneck widths at width 1.0; outputs are 4× these
EXPANSION = 4
STEM_CHANNELS = 64
# (stride, dilation) of layer1..layer4 for output stride 8 (DeepLab-v2).
STRIDE_DILATION_OS8 = ((1, 1), (2, 1), (1, 2), (1, 4))


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (stride, dilation) → 1×1 expand, BN after each conv, identity
    or `downsample` (1×1 conv + BN) shortcut, ReLU after the sum."""

    def __init__(self, in_ch, planes, stride=1, dilation=1):
        super().__init__()
        out_ch = planes * EXPANSION
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_ch))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


def make_layer(in_ch, planes, blocks, stride, dilation):
    """`blocks` bottlenecks; only the first one strides or changes the channel count."""
    layers = [Bottleneck(in_ch, planes, stride, dilation)]
    layers += [Bottleneck(planes * EXPANSION, planes, 1, dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet101(nn.Module):
    """The trunk: `forward(x)` → layer4 features (2048·width channels, stride 8).

    With `freeze_bn` (default, as DeepLab-v2), every BatchNorm stays in eval mode and its
    affine parameters are not trained."""

    def __init__(self, width=1.0, freeze_bn=True):
        super().__init__()
        self.width = width
        self.freeze_bn = freeze_bn
        stem = scaled(STEM_CHANNELS, width)
        self.conv1 = nn.Conv2d(3, stem, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        in_ch = stem
        for index, (planes, blocks, (stride, dilation)) in enumerate(
                zip(PLANES, BLOCKS_PER_LAYER, STRIDE_DILATION_OS8), start=1):
            planes = scaled(planes, width)
            self.add_module(f"layer{index}", make_layer(in_ch, planes, blocks, stride, dilation))
            in_ch = planes * EXPANSION
        self.out_channels = in_ch
        if freeze_bn:
            for module in self.batchnorms():
                module.requires_grad_(False)

    def batchnorms(self):
        return [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)]

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        for index in range(1, len(PLANES) + 1):
            x = getattr(self, f"layer{index}")(x)
        return x

    def train(self, mode=True):
        super().train(mode)
        if self.freeze_bn:
            for module in self.batchnorms():
                module.eval()
        return self
