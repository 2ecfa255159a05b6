"""DeepLab-v2 (Chen et al., TPAMI 2018) on ResNet-101, the segmentation network of
InferCam's results: atrous spatial pyramid pooling = four parallel 3×3 convolutions
over layer4 with dilations 6, 12, 18, 24 (2048→classes, bias, weights N(0, 0.01), biases 0)
whose outputs are summed. Logits at output stride 8.

Key names: the backbone's torchvision layout at the top level (`conv1.weight`,
`layer3.7.conv2.weight`, ...) and `aspp.c0..c3.{weight,bias}` for the head, so ImageNet
ResNet-101 weights load with a non-strict load (missing: `aspp.*`; unused: `fc.*`)."""
import torch.nn as nn

from network.deeplab_largefov import NUM_SEG_CLASSES
from network.param_groups import parameter_groups
from network.resnet101 import ResNet101

ASPP_DILATIONS = (6, 12, 18, 24)  # DeepLab-v2 ASPP-L
ASPP_INIT_STD = 0.01


class ASPP(nn.Module):
    """Sum of parallel dilated 3×3 convolutions `c0`, `c1`, ..."""

    def __init__(self, in_ch, num_classes, dilations=ASPP_DILATIONS):
        super().__init__()
        for index, dilation in enumerate(dilations):
            conv = nn.Conv2d(in_ch, num_classes, 3, padding=dilation, dilation=dilation)
            nn.init.normal_(conv.weight, std=ASPP_INIT_STD)
            nn.init.zeros_(conv.bias)
            self.add_module(f"c{index}", conv)

    def forward(self, x):
        return sum(branch(x) for branch in self.children())


class Net(ResNet101):
    """`forward(x)` → (B, num_classes, ceil(H/8), ceil(W/8)) logits."""

    def __init__(self, num_classes=NUM_SEG_CLASSES, width=1.0, freeze_bn=True):
        super().__init__(width=width, freeze_bn=freeze_bn)
        self.num_classes = num_classes
        self.aspp = ASPP(self.out_channels, num_classes)
        self.from_scratch_layers = [self.aspp]

    def forward(self, x):
        return self.aspp(super().forward(x))

    def get_parameter_groups(self):
        return parameter_groups(self, self.from_scratch_layers)
