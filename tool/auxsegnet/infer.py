"""AuxSegNet prediction (released `infer_AuxAff.py`): softmax of the refined segmentation,
optionally over scales and flips, optional inference CRF, argmax."""
import numpy as np

from tool.auxsegnet.model import RefinedSegmentation
from tool.core.precision import DEFAULT_PRECISION
from tool.seg.infer import apply_crf, predict_probs


def predict_segmentation(net, rgb, scales=(1.0,), flip=False, use_crf=False, device="cpu",
                         precision=DEFAULT_PRECISION):
    """infer_AuxAff.py on one uint8 RGB image: softmax of the upsampled refined
    segmentation (averaged over scales/flips; the forwards at `precision`), optional
    AuxSegNet inference CRF, argmax. Returns (label (H, W) uint8, probabilities (C, H, W)
    float32)."""
    probs = predict_probs(RefinedSegmentation(net), rgb, scales, flip, device, precision)
    return label_from_probs(rgb, probs, use_crf)


def label_from_probs(rgb, probs, use_crf=False):
    """argmax of the probabilities, after the AuxSegNet inference CRF (10 iterations) with
    `use_crf`. Returns (label (H, W) uint8, the scores it took the argmax of)."""
    scores = apply_crf(rgb, probs, "inf") if use_crf else probs
    return np.argmax(scores, axis=0).astype(np.uint8), scores
