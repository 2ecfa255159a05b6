"""ResNet-38 (Wu et al., "Wider or Deeper") as used by psa, InferCam and AuxSegNet:
pre-activation blocks, output stride 8, dilated last stages. State-dict keys are the
original ones (`b4_3.conv_branch2a.weight`, `bn7.running_var`, ...).

`width` scales every channel count (1.0 = paper) while keeping the key names, so a
0.125-wide network trains on a CPU in minutes."""
import numpy as np
import torch.nn as nn
import torch.nn.functional as F

IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
OUTPUT_STRIDE = 8

# Blocks as (name, kind, in, mid, out, stride, first_dilation, dilation, dropout);
# channel counts at width 1.0.
BLOCKS = (
    ("b2", "basic", 64, 128, 128, 2, 1, 1, 0.0),
    ("b2_1", "basic", 128, 128, 128, 1, 1, 1, 0.0),
    ("b2_2", "basic", 128, 128, 128, 1, 1, 1, 0.0),
    ("b3", "basic", 128, 256, 256, 2, 1, 1, 0.0),
    ("b3_1", "basic", 256, 256, 256, 1, 1, 1, 0.0),
    ("b3_2", "basic", 256, 256, 256, 1, 1, 1, 0.0),
    ("b4", "basic", 256, 512, 512, 2, 1, 1, 0.0),
    ("b4_1", "basic", 512, 512, 512, 1, 1, 1, 0.0),
    ("b4_2", "basic", 512, 512, 512, 1, 1, 1, 0.0),
    ("b4_3", "basic", 512, 512, 512, 1, 1, 1, 0.0),
    ("b4_4", "basic", 512, 512, 512, 1, 1, 1, 0.0),
    ("b4_5", "basic", 512, 512, 512, 1, 1, 1, 0.0),
    ("b5", "basic", 512, 512, 1024, 1, 1, 2, 0.0),
    ("b5_1", "basic", 1024, 512, 1024, 1, 2, 2, 0.0),
    ("b5_2", "basic", 1024, 512, 1024, 1, 2, 2, 0.0),
    ("b6", "bottleneck", 1024, None, 2048, 1, 4, 4, 0.3),
    ("b7", "bottleneck", 2048, None, 4096, 1, 4, 4, 0.5),
)
FROZEN_STEM = ("conv1a",)
FROZEN_STEM_AND_B2 = ("conv1a", "b2", "b2_1", "b2_2")


def scaled(channels, width):
    return max(1, int(round(channels * width)))


class ResBlock(nn.Module):
    """Pre-activation basic block: returns (output, relu(bn_branch2a(x)))."""

    def __init__(self, in_ch, mid_ch, out_ch, stride=1, first_dilation=None, dilation=1):
        super().__init__()
        first_dilation = dilation if first_dilation is None else first_dilation
        self.same_shape = in_ch == out_ch and stride == 1
        self.bn_branch2a = nn.BatchNorm2d(in_ch)
        self.conv_branch2a = nn.Conv2d(in_ch, mid_ch, 3, stride, padding=first_dilation,
                                       dilation=first_dilation, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(mid_ch)
        self.conv_branch2b1 = nn.Conv2d(mid_ch, out_ch, 3, padding=dilation, dilation=dilation,
                                        bias=False)
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)

    def forward(self, x):
        a = F.relu(self.bn_branch2a(x))
        shortcut = x if self.same_shape else self.conv_branch1(a)
        branch = self.conv_branch2a(a)
        branch = self.conv_branch2b1(F.relu(self.bn_branch2b1(branch)))
        return shortcut + branch, a


class ResBlockBot(nn.Module):
    """Pre-activation bottleneck block with Dropout2d: returns (output, relu(bn_branch2a(x)))."""

    def __init__(self, in_ch, out_ch, stride=1, dilation=1, dropout=0.0):
        super().__init__()
        self.bn_branch2a = nn.BatchNorm2d(in_ch)
        self.conv_branch2a = nn.Conv2d(in_ch, out_ch // 4, 1, stride, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(out_ch // 4)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(out_ch // 4, out_ch // 2, 3, padding=dilation,
                                        dilation=dilation, bias=False)
        self.bn_branch2b2 = nn.BatchNorm2d(out_ch // 2)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(out_ch // 2, out_ch, 1, bias=False)
        self.conv_branch1 = nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)

    def forward(self, x):
        a = F.relu(self.bn_branch2a(x))
        shortcut = self.conv_branch1(a)
        branch = F.relu(self.bn_branch2b1(self.conv_branch2a(a)))
        branch = self.conv_branch2b1(self.dropout_2b1(branch))
        branch = F.relu(self.bn_branch2b2(branch))
        branch = self.conv_branch2b2(self.dropout_2b2(branch))
        return shortcut + branch, a


class Net(nn.Module):
    """The trunk. `forward(x)` → conv6; `forward_as_dict(x)` → conv4, conv5, conv6.

    In training mode every BatchNorm stays in eval mode with frozen affine parameters,
    and the modules named in `frozen` (default: conv1a) keep requires_grad False."""

    def __init__(self, width=1.0, frozen=FROZEN_STEM):
        super().__init__()
        self.width = width
        self.conv1a = nn.Conv2d(3, scaled(64, width), 3, padding=1, bias=False)
        for name, kind, cin, mid, cout, stride, first_dil, dil, drop in BLOCKS:
            cin, cout = scaled(cin, width), scaled(cout, width)
            if kind == "basic":
                block = ResBlock(cin, scaled(mid, width), cout, stride, first_dil, dil)
            else:
                block = ResBlockBot(cin, cout, stride, dil, drop)
            self.add_module(name, block)
        self.bn7 = nn.BatchNorm2d(scaled(4096, width))
        self.channels = {"conv4": scaled(512, width), "conv5": scaled(1024, width),
                         "conv6": scaled(4096, width)}
        self.init_from_scratch()
        self.freeze_batchnorm = True
        self.frozen = tuple(frozen)
        self.not_training = [getattr(self, n) for n in self.frozen]
        for module in self.not_training:
            module.requires_grad_(False)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.requires_grad_(False)

    def init_from_scratch(self):
        """He-normal convolutions and a zero last convolution in every residual branch, so
        that an untrained trunk (no ImageNet weights; BatchNorm frozen at identity) passes
        its input through the shortcuts instead of shrinking or exploding it. Loading a
        checkpoint replaces all of it."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        for name, kind, *_ in BLOCKS:
            block = getattr(self, name)
            last = block.conv_branch2b1 if kind == "basic" else block.conv_branch2b2
            nn.init.zeros_(last.weight)

    def forward_as_dict(self, x):
        x = self.conv1a(x)
        for name, *_ in BLOCKS:
            x, pre_act = getattr(self, name)(x)
            if name == "b5":
                conv4 = pre_act
            elif name == "b6":
                conv5 = pre_act
        conv6 = F.relu(self.bn7(x))
        return {"conv4": conv4, "conv5": conv5, "conv6": conv6}

    def forward(self, x):
        return self.forward_as_dict(x)["conv6"]

    def train(self, mode=True):
        """Train mode for dropout only: BatchNorm keeps its running statistics (the papers'
        setting), unless `freeze_batchnorm` was set False for training from scratch."""
        super().train(mode)
        if self.freeze_batchnorm:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self


def normalize_image(rgb):
    """uint8 RGB (H, W, 3) → float32 (3, H, W): x/255, ImageNet mean/std (float64 math,
    as the originals)."""
    x = np.asarray(rgb, dtype=np.float64) / 255.0
    x = (x - np.array(IMAGE_MEAN)) / np.array(IMAGE_STD)
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)
