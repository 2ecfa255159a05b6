"""psa's ResNet-38 classifier: Dropout2d → global average pool → fc8 (1×1 conv, no bias),
and `forward_cam` = relu(conv(conv6, fc8.weight)). conv1a and b2* are frozen."""
import torch.nn as nn
import torch.nn.functional as F

from network import resnet38d
from network.param_groups import parameter_groups

NUM_CLASSES = 20  # VOC foreground classes


class Net(resnet38d.Net):
    def __init__(self, num_classes=NUM_CLASSES, width=1.0):
        super().__init__(width=width, frozen=resnet38d.FROZEN_STEM_AND_B2)
        self.num_classes = num_classes
        self.dropout7 = nn.Dropout2d(0.5)
        self.fc8 = nn.Conv2d(self.channels["conv6"], num_classes, 1, bias=False)
        nn.init.xavier_uniform_(self.fc8.weight)
        self.from_scratch_layers = [self.fc8]

    def forward(self, x):
        x = self.dropout7(super().forward(x))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc8(x).flatten(1)

    def forward_cam(self, x):
        return F.relu(F.conv2d(super().forward(x), self.fc8.weight))

    def get_parameter_groups(self):
        return parameter_groups(self, self.from_scratch_layers)
