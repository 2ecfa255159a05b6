"""AuxSegNet pseudo-label update (released `gen_pgt.py`): refined CAM and saliency from
the network, fused with the off-the-shelf saliency, saliency CRF, heuristic fusion."""
import numpy as np
import torch
import torch.nn.functional as F

from network.AuxSegNet import propagate
from network.resnet38d import normalize_image
from tool.auxsegnet.fusion import fuse_cam_saliency
from tool.cam.multiscale import normalize_cam
from tool.core.io import save_gray_png, save_label_png
from tool.core.precision import DEFAULT_PRECISION, float32_outputs, precision_context
from tool.data.classes import add_class_args
from tool.seg.crf import crf_for_sal

RELEASED_LIST = "voc12/train_aug_id.txt"
RELEASED_CLS_LABELS = "voc12/cls_labels.npy"


def add_pseudo_label_args(group, written):
    """--seg_pgt_path and --sal_pgt_path (the pseudo labels; `written`: this stage writes
    them, else it reads them), and the images they are for: --list_path, --cls_labels and
    the class flags, with the released defaults."""
    role = "output: " if written else ""
    group.add_argument("--seg_pgt_path", required=True,
                       help=f"{role}segmentation pseudo labels <id>.png (0..C-1, 255 ignored)")
    group.add_argument("--sal_pgt_path", required=True,
                       help=f"{role}saliency pseudo labels <id>.png")
    group.add_argument("--list_path", default=RELEASED_LIST,
                       help="image ids (released default: train_aug)")
    group.add_argument("--cls_labels", default=RELEASED_CLS_LABELS,
                       help="psa image-label dict (released code reads voc12/cls_labels.npy)")
    add_class_args(group, with_background=True, found_in="the image labels")


def _upsample(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


@torch.inference_mode()
def update_scores(net, rgb, device="cpu", precision=DEFAULT_PRECISION):
    """gen_pgt.py's network part on one uint8 RGB image (single scale, whole image):
    (refined CAM (C, H, W) = cross_aff . relu/max-normalised CAM of the C foreground
    classes, upsampled; refined saliency (H, W) = sigmoid of the refined saliency logit,
    upsampled). The forward runs at `precision`, the rest in float32."""
    size = rgb.shape[:2]
    x = torch.from_numpy(normalize_image(rgb))[None].to(device)
    with precision_context(x.device, precision):
        outputs = net(x, require_cam=True)
    _, cam, _, refined_sal, _, _, cross_aff = float32_outputs(outputs)
    cam = normalize_cam(F.relu(cam[0]))[None]
    refined_cam = _upsample(propagate(cross_aff, cam), size)
    ref_sal = _upsample(torch.sigmoid(refined_sal), size)
    return refined_cam[0].cpu().numpy(), ref_sal[0, 0].cpu().numpy()


def fused_saliency(rgb, ref_sal, sal_in):
    """(refined saliency + the ORIGINAL off-the-shelf saliency in [0, 1]) / 2, then
    AuxSegNet's saliency CRF: (H, W) float32."""
    fused = (ref_sal.astype(np.float32) + np.asarray(sal_in, np.float64)) / 2
    return crf_for_sal(np.ascontiguousarray(rgb, np.uint8), fused)[0]


def saliency_png_values(fused):
    """The saved saliency label: uint8(truncate(255 * fused)) as gen_pgt.py's save_as_png."""
    return (255 * fused).astype(np.uint8)


def updated_labels(rgb, refined_cam, ref_sal, sal_in, label):
    """(new saliency PNG values (H, W) uint8, new segmentation label (H, W) uint8): the
    fused float saliency (not the quantised PNG) drives the heuristic fusion."""
    fused = fused_saliency(rgb, ref_sal, sal_in)
    return saliency_png_values(fused), fuse_cam_saliency(refined_cam, fused, label)


def write_updated_labels(item):
    """updated_labels of one image written to (sal_png_path, seg_png_path); module-level
    so a process pool can run it. item = (rgb, refined_cam, ref_sal, sal_in, label,
    sal_png_path, seg_png_path)."""
    *inputs, sal_path, seg_path = item
    sal_png, seg = updated_labels(*inputs)
    save_gray_png(sal_path, sal_png)
    save_label_png(seg_path, seg)
    return seg_path
