"""What the CAM stages (infer_cls.py, split_img.py, infer_cam.py) share: the classifier's
flags, the classifier loaded for inference, and the per-class heatmap files."""
import os

from network import resnet38_cls
from tool.cam.multiscale import CAM_SCALES
from tool.core.checkpoint import load_weights
from tool.core.cli import nonnegative_int, positive_float
from tool.core.dist import add_inference_environment_args
from tool.core.visualize import save_cam_overlay
from tool.data.classes import add_class_args, file_name_part


def add_classifier_args(group, released="psa infer_cls.py"):
    """--weights, --network, the class flags, --width and --scales; `released` names the
    script whose defaults these are (for the help)."""
    group.add_argument("--weights", required=True, help="classifier checkpoint (.pth)")
    group.add_argument("--network", default="network.resnet38_cls",
                       help=f"accepted for {released} compatibility; only "
                            "network.resnet38_cls exists")
    add_class_args(group, with_background=False, found_in="the image labels")
    group.add_argument("--width", type=positive_float, default=1.0,
                       help="channel multiplier (1.0 = paper)")
    group.add_argument("--scales", type=positive_float, nargs="+", default=list(CAM_SCALES),
                       help=f"{released}: 1.0 0.5 1.5 2.0, each with its flip")


def add_environment_args(group):
    """--device, --precision, --shard and the released --num_workers (images run one after
    another)."""
    add_inference_environment_args(group)
    group.add_argument("--num_workers", type=nonnegative_int, default=1,
                       help="accepted for InferCam compatibility; images run one after another")


def load_classifier(weights, num_classes, width, device):
    """The ResNet-38 classifier with `weights` (one report line), in eval mode on `device`."""
    net = resnet38_cls.Net(num_classes=num_classes, width=width)
    load_weights(net, weights, num_classes=num_classes)
    return net.eval().to(device)


def heatmap_paths(folder, img_id, classes, names):
    """InferCam's heatmap names: <id>_<class name>.jpg per labelled class."""
    return {c: os.path.join(folder, f"{img_id}_{file_name_part(names[c])}.jpg") for c in classes}


def save_class_heatmaps(paths, rgb, cams):
    """One CAM overlay per class: `paths` from heatmap_paths, `cams` a CAM dict."""
    for c, path in paths.items():
        save_cam_overlay(path, rgb, {c: cams[c]})
