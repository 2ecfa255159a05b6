"""Every dense CRF of the project (pydensecrf), with the parameter sets of the original
code named once.

Parameter sources: psa `tool/imutils.crf_inference` (CAM post-processing, la/ha CRF),
AuxSegNet `tool/imutils.crf_inference_inf` (segmentation inference) and
`crf_for_sal` (saliency pseudo-label update)."""
from dataclasses import dataclass

import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_softmax


@dataclass(frozen=True)
class CRFParams:
    """Pairwise terms of a dense CRF: Gaussian (smoothness) and bilateral (appearance)."""
    gauss_sxy: float
    gauss_compat: float
    bilateral_sxy: float
    bilateral_srgb: float
    bilateral_compat: float


PSA_CRF = CRFParams(gauss_sxy=3, gauss_compat=3, bilateral_sxy=80, bilateral_srgb=13,
                    bilateral_compat=10)
AUXSEGNET_INF_CRF = CRFParams(gauss_sxy=4, gauss_compat=3, bilateral_sxy=83, bilateral_srgb=5,
                              bilateral_compat=3)
AUXSEGNET_SAL_CRF = CRFParams(gauss_sxy=3, gauss_compat=3, bilateral_sxy=60, bilateral_srgb=5,
                              bilateral_compat=5)
SAL_CRF_ITERATIONS = 1
SAL_TAU = 1.05
SAL_EPS = 1e-8


def dense_crf(img, unary, params, t, scale_factor=1):
    """Mean-field inference: `unary` (L, H*W) float32 energies, `img` (H, W, 3) uint8 RGB.
    Spatial widths are divided by `scale_factor`. Returns Q as (L, H, W) float32."""
    h, w = img.shape[:2]
    n_labels = unary.shape[0]
    crf = dcrf.DenseCRF2D(w, h, n_labels)
    crf.setUnaryEnergy(np.array(unary, dtype=np.float32, order="C"))
    crf.addPairwiseGaussian(sxy=params.gauss_sxy / scale_factor, compat=params.gauss_compat)
    crf.addPairwiseBilateral(sxy=params.bilateral_sxy / scale_factor,
                             srgb=params.bilateral_srgb,
                             rgbim=np.array(img, dtype=np.uint8, order="C"),  # writable copy
                             compat=params.bilateral_compat)
    q = crf.inference(t)
    return np.asarray(q, dtype=np.float32).reshape((n_labels, h, w))


def _check_labels(probs, labels):
    if probs.shape[0] != labels:
        raise ValueError(f"probs have {probs.shape[0]} channels but labels={labels}")


def crf_inference(img, probs, t=10, scale_factor=1, labels=21):
    """psa's CRF: unary -log(clip(p, 1e-5, 1)) of (labels, H, W) scores; returns Q."""
    _check_labels(probs, labels)
    return dense_crf(img, unary_from_softmax(probs), PSA_CRF, t, scale_factor)


def crf_inference_inf(img, probs, t=10, scale_factor=1, labels=21):
    """AuxSegNet's inference CRF (infer_AuxAff.py --use_crf): as crf_inference with its
    own pairwise parameters."""
    _check_labels(probs, labels)
    return dense_crf(img, unary_from_softmax(probs), AUXSEGNET_INF_CRF, t, scale_factor)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def saliency_unary(anno):
    """AuxSegNet's 2-label energies of a saliency map `anno` in [0, 1], float64 math,
    float32 result (2, H*W): background then foreground."""
    a = np.asarray(anno, dtype=np.float64).reshape(-1)
    e_bg = -np.log(1.0 - a + SAL_EPS) / (SAL_TAU * _sigmoid(1.0 - a))
    e_fg = -np.log(a + SAL_EPS) / (SAL_TAU * _sigmoid(a))
    return np.stack([e_bg, e_fg]).astype(np.float32)


def crf_for_sal(img, anno):
    """AuxSegNet's saliency CRF (gen_pgt.py): 1 iteration; returns Q[foreground] (1, H, W)."""
    q = dense_crf(img, saliency_unary(anno), AUXSEGNET_SAL_CRF, SAL_CRF_ITERATIONS)
    return q[1:2]


def crf_with_bg_power(img, cam_dict, alpha, t=10):
    """psa infer_cls.py la/ha CRF: bg = (1 - max_c cam)^alpha stacked before the present
    classes' CAMs (ascending class order) -> {0: bg, k+1: class k}."""
    keys = sorted(cam_dict)
    if not keys:
        raise ValueError("crf_with_bg_power: the CAM dict has no class")
    v = np.stack([cam_dict[k] for k in keys])
    bg = np.power(1 - np.max(v, axis=0, keepdims=True), alpha)
    q = crf_inference(img, np.concatenate((bg, v), axis=0), t=t, labels=len(keys) + 1)
    out = {0: q[0]}
    out.update({k + 1: q[i + 1] for i, k in enumerate(keys)})
    return out
