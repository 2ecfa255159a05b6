"""AuxSegNet (Xu et al., ICCV 2021): a ResNet-38 trunk shared by three tasks,
classification (`fc8`), saliency (`sal_*`) and segmentation (`seg_*`), with a
self-affinity per dense branch and a learned cross-task mix of the two affinities
that refines both dense predictions.

State-dict keys and their order are the released ones (280 keys for 21 classes), so
released checkpoints load; `width` scales every channel count for CPU runs."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from network import resnet38d

HEAD_CHANNELS = 128  # width of the saliency/segmentation branches in the paper
BRANCH_DILATIONS = (6, 12, 18)  # conv1, conv2, conv3 of each dense branch
TEN_X_NAME_PARTS = ("seg", "sal", "fc8")  # released train_AuxAff.py: these get 10x lr


def _dilated_conv(cin, cout, dilation):
    conv = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=True)
    nn.init.xavier_uniform_(conv.weight)
    return conv


def _score_conv(cin, cout):
    conv = nn.Conv2d(cin, cout, 1, bias=False)
    nn.init.xavier_uniform_(conv.weight)
    return conv


def _flat(x):
    """(B, C, h, w) -> (B, h*w, C): one row per position, raster order."""
    return x.flatten(2).transpose(1, 2)


def _unflat(rows, like):
    """Inverse of `_flat`, shaped as `like` except for the channel count."""
    b, _, h, w = like.shape
    return rows.transpose(1, 2).contiguous().view(b, rows.shape[2], h, w)


def propagate(aff, x):
    """Each position of `x` (B, C, h, w) replaced by the `aff`-weighted sum (B, N, N)
    over all positions: row i of `aff` holds the weights for query position i."""
    return _unflat(torch.bmm(aff, _flat(x)), x)


class NLBlockND(nn.Module):
    """The embedded-Gaussian non-local block as AuxSegNet uses it: forward returns only
    the affinity softmax_rows(theta(x)^T phi(x)) of shape (B, N, N). `g` and `W_z` are
    created (the released checkpoints hold them) but never used."""

    def __init__(self, channels):
        super().__init__()
        self.g = nn.Conv2d(channels, channels, 1)
        self.W_z = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.W_z[1].weight)
        nn.init.zeros_(self.W_z[1].bias)
        self.theta = nn.Conv2d(channels, channels, 1)
        self.phi = nn.Conv2d(channels, channels, 1)
        # Unused in forward: no gradient, and DistributedDataParallel must not wait for one.
        self.g.requires_grad_(False)
        self.W_z.requires_grad_(False)

    def forward(self, x):
        query = _flat(self.theta(x)).float()  # (B, N, C)
        key = self.phi(x).flatten(2).float()  # (B, C, N)
        # float32 even under AMP: 128-channel dot products can overflow float16
        with torch.autocast(x.device.type, enabled=False):
            return F.softmax(torch.bmm(query, key), dim=-1)


class SegNet(resnet38d.Net):
    """`forward(x, require_seg=True, require_cls=True, require_sal=True, require_cam=False)`:

    * default: (x_cls, init_sal, refined_sal, init_seg, refined_seg)
    * require_cam=True: (x_cls, cam, init_sal, refined_sal, init_seg, refined_seg, cross_aff)
    * require_cls=False, require_sal=False: (init_seg, refined_seg)

    Dense outputs are at output stride 8; `cam` is not ReLU'd; cross_aff is (B, N, N)."""

    def __init__(self, num_classes=21, width=1.0):
        super().__init__(width=width)
        self.num_classes = num_classes
        feat = self.channels["conv6"]
        head = resnet38d.scaled(HEAD_CHANNELS, width)
        d1, d2, d3 = BRANCH_DILATIONS
        self.dropout7 = nn.Dropout2d(0.5)
        self.fc8 = _score_conv(feat, num_classes - 1)
        self.seg_conv1 = _dilated_conv(feat, head, d1)
        self.seg_conv2 = _dilated_conv(head, head, d2)
        self.seg_conv3 = _dilated_conv(head, head, d3)
        self.seg_conv4 = _score_conv(head, num_classes)
        self.sal_conv1 = _dilated_conv(feat, head, d1)
        self.sal_conv2 = _dilated_conv(head, head, d2)
        self.sal_conv3 = _dilated_conv(head, head, d3)
        self.sal_conv4 = _score_conv(head, 1)
        self.seg_att = NLBlockND(head)
        self.sal_att = NLBlockND(head)
        self.seg_g = nn.Conv2d(head, head, 1)
        self.seg_W = nn.Conv2d(head, head, 1)
        self.sal_g = nn.Conv2d(head, head, 1)
        self.sal_W = nn.Conv2d(head, head, 1)
        self.cross_att = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, bias=False), nn.ReLU(),
                                       nn.Conv2d(2, 2, 1), nn.Softmax(dim=1))
        # its input is channels-last (see _cross_affinity); weights to match, so gradients
        # have the parameters' layout (DistributedDataParallel expects that)
        self.cross_att.to(memory_format=torch.channels_last)

    def _classify(self, feats):
        pooled = F.adaptive_avg_pool2d(self.dropout7(feats), 1)
        return self.fc8(pooled).flatten(1), F.conv2d(feats, self.fc8.weight)

    def _dense_branch(self, feats, prefix):
        """Initial prediction and self-affinity of the `seg` or `sal` branch."""
        conv1, conv2, conv3, conv4, att, g, w = (getattr(self, f"{prefix}_{n}") for n in (
            "conv1", "conv2", "conv3", "conv4", "att", "g", "W"))
        x = F.relu(conv2(F.relu(conv1(feats))))
        aff = att(x)
        x = x + w(propagate(aff, g(x)))
        return conv4(F.relu(conv3(x))), aff

    def _cross_affinity(self, seg_aff, sal_aff):
        # (B, 2, N, N) seen as a 2-channel image, stored channels-last: the small-channel
        # convolution runs several times faster that way on CPUs
        stacked = torch.stack((seg_aff, sal_aff), dim=-1).permute(0, 3, 1, 2)
        weights = self.cross_att(stacked)
        return stacked[:, 0] * weights[:, 0] + stacked[:, 1] * weights[:, 1]

    def forward(self, x, require_seg=True, require_cls=True, require_sal=True, require_cam=False):
        full = require_seg and require_cls and require_sal
        seg_only = require_seg and not require_cls and not require_sal
        if not (full or seg_only):
            raise ValueError(
                "SegNet.forward supports require_seg=True with either require_cls and "
                "require_sal both True or both False; got "
                f"require_seg={require_seg}, require_cls={require_cls}, "
                f"require_sal={require_sal}, require_cam={require_cam}")
        feats = super().forward(x)
        init_seg, seg_aff = self._dense_branch(feats, "seg")
        init_sal, sal_aff = self._dense_branch(feats, "sal")
        cross_aff = self._cross_affinity(seg_aff, sal_aff)
        refined_seg = propagate(cross_aff, init_seg)
        if seg_only:
            return init_seg, refined_seg
        refined_sal = propagate(cross_aff, init_sal)
        x_cls, cam = self._classify(feats)
        if require_cam:
            return x_cls, cam, init_sal, refined_sal, init_seg, refined_seg, cross_aff
        return x_cls, init_sal, refined_sal, init_seg, refined_seg

    def _lr_split(self, ten_x):
        return [p for name, p in self.named_parameters() if p.requires_grad
                and any(part in name for part in TEN_X_NAME_PARTS) == ten_x]

    def get_10x_lr_params(self):
        """Trainable parameters whose names contain seg, sal or fc8 (10x lr)."""
        return self._lr_split(True)

    def get_1x_lr_params(self):
        """The other trainable parameters: trunk and cross_att (1x lr)."""
        return self._lr_split(False)
