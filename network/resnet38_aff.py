"""psa's AffinityNet on ResNet-38: 1x1 feature layers on conv4/conv5/conv6 (f8_3, f8_4,
f8_5, ELU), concatenated and mixed by f9 (ELU); the affinity of a pixel pair is
exp(-mean over channels |f_i - f_j|) for the radius-5 pairs of `get_indices_of_pairs`.
conv1a and b2* are frozen."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from network import resnet38d
from network.pairs import PAIR_RADIUS, dense_affinity, get_indices_of_pairs
from network.param_groups import parameter_groups

# Output channels of f8_3, f8_4, f8_5 at width 1.0 (64 + 128 + 256 = 448 into f9).
FEATURE_CHANNELS = {"conv4": 64, "conv5": 128, "conv6": 256}
F9_INIT_GAIN = 4  # psa: xavier_uniform_(f9.weight, gain=4)


class Net(resnet38d.Net):
    def __init__(self, width=1.0):
        super().__init__(width=width, frozen=resnet38d.FROZEN_STEM_AND_B2)
        out = {k: resnet38d.scaled(c, width) for k, c in FEATURE_CHANNELS.items()}
        self.f8_3 = nn.Conv2d(self.channels["conv4"], out["conv4"], 1, bias=False)
        self.f8_4 = nn.Conv2d(self.channels["conv5"], out["conv5"], 1, bias=False)
        self.f8_5 = nn.Conv2d(self.channels["conv6"], out["conv6"], 1, bias=False)
        total = sum(out.values())
        self.f9 = nn.Conv2d(total, total, 1, bias=False)
        for layer in (self.f8_3, self.f8_4, self.f8_5):
            nn.init.kaiming_normal_(layer.weight)
        nn.init.xavier_uniform_(self.f9.weight, gain=F9_INIT_GAIN)
        self.from_scratch_layers = [self.f8_3, self.f8_4, self.f8_5, self.f9]

    def features(self, x):
        """The (B, 448, h, w) affinity features."""
        d = super().forward_as_dict(x)
        f = torch.cat([F.elu(self.f8_3(d["conv4"])), F.elu(self.f8_4(d["conv5"])),
                       F.elu(self.f8_5(d["conv6"]))], dim=1)
        return F.elu(self.f9(f))

    def forward(self, x, to_dense=False):
        """Pair affinities (B, 34, M); with to_dense (batch 1) the (hw, hw) matrix."""
        features = self.features(x)
        aff = pair_affinities(features)
        if not to_dense:
            return aff
        if aff.shape[0] != 1:
            raise ValueError(f"to_dense needs a batch of 1, got {aff.shape[0]}")
        return dense_affinity(aff[0], tuple(features.shape[2:]))

    def get_parameter_groups(self):
        return parameter_groups(self, self.from_scratch_layers)


def pair_affinities(features, radius=PAIR_RADIUS):
    """exp(-mean over channels |f_from - f_to|) of (B, C, h, w) features for the pairs of
    `get_indices_of_pairs`: (B, D, M), in float32 (bfloat16 would round every affinity
    above 0.998 to 1, where the loss's -log(1 - aff) and the walk are most sensitive)."""
    ind_from, ind_to = (torch.from_numpy(i).to(features.device)
                        for i in get_indices_of_pairs(radius, tuple(features.shape[2:])))
    f = features.float().flatten(2)
    f_from = f.index_select(2, ind_from).unsqueeze(2)
    f_to = f.index_select(2, ind_to).view(f.shape[0], f.shape[1], -1, ind_from.numel())
    return torch.exp(-torch.mean(torch.abs(f_to - f_from), dim=1))
