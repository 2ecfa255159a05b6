"""AuxSegNet checkpoints as ready networks: the width read from the weights, a strict
load with one report line, and the refined-segmentation view used for prediction."""
import torch

from network.AuxSegNet import SegNet
from tool.core import checkpoint
from tool.core.cli import add_network_arg, positive_float
from tool.core.dist import add_inference_environment_args
from tool.core.io import InputError

TRUNK_STEM_CHANNELS = 64  # conv1a output channels at width 1.0


def add_width_arg(parser):
    """--width of a trained AuxSegNet: read from its weights unless given."""
    parser.add_argument("--width", type=positive_float, default=None,
                        help="channel width of the weights (default: read from the checkpoint)")


def add_released_inference_args(parser):
    """The released --network AuxSegNet and --device/--gpu_id, with --precision and
    --shard: the flags of the inference scripts (gen_pgt.py, infer_AuxAff.py) that are not
    about their data."""
    add_network_arg(parser, "AuxSegNet")
    add_inference_environment_args(parser, gpu_id=True)


def width_from_state_dict(state, path):
    """The `width` a checkpoint was trained with (conv1a has 64 * width filters)."""
    if "conv1a.weight" not in state:
        raise InputError(f"{path}: not a ResNet-38 based checkpoint (no conv1a.weight)")
    return state["conv1a.weight"].shape[0] / TRUNK_STEM_CHANNELS


def load_segnet(weights, num_classes, width=None, device="cpu"):
    """SegNet with `weights` (strict load, one report line), in eval mode on `device`;
    the width is read from the checkpoint unless given. num_classes: with background."""
    return segnet_from_state(checkpoint.read_checkpoint(weights), weights, num_classes, width,
                             device)


def segnet_from_state(state, weights, num_classes, width=None, device="cpu"):
    """load_segnet of a checkpoint already read from `weights`."""
    if width is None:
        width = width_from_state_dict(state, weights)
    net = SegNet(num_classes=num_classes, width=width)
    missing, unexpected = checkpoint.load_state(net, state, weights, strict=True,
                                                num_classes=num_classes)
    print(checkpoint.load_report(weights, state, missing, unexpected), flush=True)
    return net.to(device).eval()


class RefinedSegmentation(torch.nn.Module):
    """SegNet seen as a plain segmentation network: x -> refined_seg logits (what
    infer_AuxAff.py uses)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x, require_cls=False, require_sal=False)[1]
