"""Segmentation inference shared by `infer_seg.py` and the tests: class probabilities of
one image at one or several scales with optional horizontal flips, an optional dense
CRF, and the settings record that `eval_seg.py` prints next to its numbers.

Multi-scale + flip: every scaled (and mirrored) input runs through the network, each
output is upsampled bilinearly (align_corners=False) to the image size and soft-maxed,
mirrored outputs are flipped back, and the probabilities are averaged."""
import numpy as np
import torch
import torch.nn.functional as F

from network.resnet38d import normalize_image
from tool.core.precision import DEFAULT_PRECISION, precision_context
from tool.seg import crf

SINGLE_SCALE = (1.0,)
MS_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5)  # DeepLab-v2 multi-scale test scales
CRF_FUNCTIONS = {"inf": crf.crf_inference_inf, "psa": crf.crf_inference}
CRF_ITERATIONS = 10  # psa and AuxSegNet both run 10 mean-field iterations


def scaled_input(x, scale):
    """Normalised (1, 3, H, W) tensor resized by `scale` (bilinear, at least 1 pixel)."""
    if scale == 1.0:
        return x
    h, w = x.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


@torch.no_grad()  # not inference_mode: autocast caches its weight casts only here
def predict_probs(net, rgb, scales=SINGLE_SCALE, flip=False, device="cpu",
                  precision=DEFAULT_PRECISION):
    """(C, H, W) float32 class probabilities of a uint8 RGB image (H, W, 3), averaged
    over `scales` and, with `flip`, their horizontal mirrors. Only the forwards run at
    `precision` (tool/core/precision.py); the logits are float32 from there on."""
    if not scales:
        raise ValueError("predict_probs needs at least one scale")
    rgb = np.asarray(rgb)
    size = rgb.shape[:2]
    x = torch.from_numpy(normalize_image(rgb))[None].to(device)
    total = None
    for scale in scales:
        inp = scaled_input(x, scale)
        batch = torch.cat([inp, inp.flip(-1)]) if flip else inp
        with precision_context(x.device, precision):
            out = net(batch)
        logits = F.interpolate(out.float(), size=size, mode="bilinear", align_corners=False)
        probs = torch.softmax(logits, dim=1)
        if flip:
            probs = torch.stack([probs[0], probs[1].flip(-1)])
        probs = probs.sum(0)
        total = probs if total is None else total + probs
    views = len(scales) * (2 if flip else 1)
    return (total / views).cpu().numpy().astype(np.float32)


def apply_crf(rgb, probs, kind):
    """Dense CRF over the probabilities: kind "inf" = AuxSegNet's inference parameters
    (crf_inference_inf), "psa" = psa's crf_inference; 10 iterations. Returns Q (C, H, W)."""
    return CRF_FUNCTIONS[kind](np.ascontiguousarray(rgb, dtype=np.uint8), probs,
                               t=CRF_ITERATIONS, labels=probs.shape[0])


def predict_label(net, rgb, scales=SINGLE_SCALE, flip=False, crf_kind=None, device="cpu",
                  precision=DEFAULT_PRECISION):
    """(H, W) uint8 class map: argmax of the (CRF-refined, when crf_kind is given)
    probabilities; the forwards at `precision`."""
    probs = predict_probs(net, rgb, scales, flip, device, precision)
    if crf_kind is not None:
        probs = apply_crf(rgb, probs, crf_kind)
    return np.argmax(probs, axis=0).astype(np.uint8)


def inference_settings(model, weights, scales, flip, crf_kind, precision=DEFAULT_PRECISION):
    """What `settings.json` records for eval_seg.py."""
    return {"stage": "infer_seg", "model": model, "weights": str(weights),
            "scales": [float(s) for s in scales], "flip": bool(flip),
            "crf": crf_kind if crf_kind is not None else "none", "precision": precision}
