"""AuxSegNet's heuristic fusion of class activation maps and a saliency map into a
segmentation pseudo label (AuxSegNet `tool/imutils.fusion_cam`, used by gen_pgt.py and
for the initial labels)."""
import numpy as np

from tool.core.io import IGNORE_LABEL

CAM_THRESHOLD = 0.2   # AuxSegNet fusion_cam: a pixel is "on a class" where max CAM > 0.2
SAL_THRESHOLD = 0.06  # AuxSegNet fusion_cam: a pixel is salient where saliency > 0.06


def fuse_cam_saliency(cams, sal, label, cam_threshold=CAM_THRESHOLD,
                      sal_threshold=SAL_THRESHOLD):
    """cams (C, H, W) scores, sal (H, W) in [0, 1] (a leading channel of 1 is squeezed),
    label (C,) multi-hot (C foreground classes: VOC 20, COCO 80). Salient and on a class
    -> 1 + argmax of the label-masked CAMs; exactly one of the two -> 255; neither -> 0.
    Returns uint8 (H, W)."""
    cams = np.asarray(cams) * np.asarray(label).reshape(-1, 1, 1)
    sal = np.asarray(sal).reshape(cams.shape[1:])
    on_class = cams.max(axis=0) > cam_threshold
    salient = sal > sal_threshold
    out = np.where(salient & on_class, cams.argmax(axis=0) + 1, 0)
    out[salient ^ on_class] = IGNORE_LABEL
    return out.astype(np.uint8)
