"""ResNet-38 with a DeepLab-LargeFOV-style head, the segmentation network of psa's
experiments (Wu et al.'s ResNet-38 segmentation model, ported to PyTorch in the psa
family of codebases): over conv6, `fc8_seg_conv1` 3×3 dilation 12 (4096→512, bias) →
ReLU → `fc8_seg_conv2` 3×3 dilation 12 (512→classes, bias), both Xavier-uniform.
Logits at output stride 8.

Initialise from the ResNet-38 classifier (`resnet38_cls`) or ImageNet ResNet-38 weights
with a non-strict load: the trunk keys are shared, `fc8.weight` is unused and the head
starts from its initialisation."""
import torch.nn as nn
import torch.nn.functional as F

from network import resnet38d
from network.param_groups import parameter_groups

NUM_SEG_CLASSES = 21  # VOC background + 20 classes
HEAD_CHANNELS = 512
HEAD_DILATION = 12


class Net(resnet38d.Net):
    """`forward(x)` → (B, num_classes, ceil(H/8), ceil(W/8)) logits.

    `freeze_bn` (default, as the trunk in psa) keeps BatchNorm in eval mode with frozen
    affine parameters; False trains statistics and affine parameters (only sensible with
    large batches)."""

    def __init__(self, num_classes=NUM_SEG_CLASSES, width=1.0, freeze_bn=True):
        super().__init__(width=width)
        self.num_classes = num_classes
        self.freeze_batchnorm = freeze_bn
        mid = resnet38d.scaled(HEAD_CHANNELS, width)
        self.fc8_seg_conv1 = nn.Conv2d(self.channels["conv6"], mid, 3, padding=HEAD_DILATION,
                                       dilation=HEAD_DILATION)
        self.fc8_seg_conv2 = nn.Conv2d(mid, num_classes, 3, padding=HEAD_DILATION,
                                       dilation=HEAD_DILATION)
        for conv in (self.fc8_seg_conv1, self.fc8_seg_conv2):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.from_scratch_layers = [self.fc8_seg_conv1, self.fc8_seg_conv2]
        if not freeze_bn:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.requires_grad_(True)

    def forward(self, x):
        x = F.relu(self.fc8_seg_conv1(super().forward(x)))
        return self.fc8_seg_conv2(x)

    def get_parameter_groups(self):
        return parameter_groups(self, self.from_scratch_layers)

