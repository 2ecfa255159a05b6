"""psa's random walk (`infer_aff.py`): CAM scores at 1/8 resolution propagated with the
AffinityNet transition matrix T = A^beta / column sums, t = 2^logt steps.

Two implementations of the same product `cam_vec @ T^t`:
- `random_walk_dense`: the original, T^t by `logt` squarings of the dense (hw)^2 matrix;
- `random_walk(..., method="sparse")` (default): t sparse steps over the 34-neighbour
  band of pairs (a CSR matrix whose pattern is cached per feature-map size), in float64,
  only for score rows that are not all zero, on one CPU thread. The pairs are the ones of
  `get_indices_of_pairs`, so both see the same affinities."""
import functools
import warnings
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from network.pairs import PAIR_RADIUS, dense_affinity, get_indices_in_radius
from network.resnet38d import OUTPUT_STRIDE, normalize_image
from tool.core.precision import DEFAULT_PRECISION, precision_context
from tool.data.voc import NUM_CLASSES

RW_ALPHA = 16  # psa infer_aff.py default background power
RW_BETA = 8  # psa infer_aff.py default affinity power
RW_LOGT = 8  # psa infer_aff.py default: t = 2^8 steps
RW_SCALE = 1.0  # psa walks at the image's own size
METHODS = ("sparse", "dense")
SPARSE_CPU_THREADS = 1  # see cpu_threads


def transition_power_dense(aff_dense, beta=RW_BETA, logt=RW_LOGT):
    """T^(2^logt) with T = A^beta divided by its column sums, squared `logt` times (psa)."""
    powered = torch.pow(aff_dense, beta)
    trans = powered / torch.sum(powered, dim=0, keepdim=True)
    for _ in range(logt):
        trans = torch.matmul(trans, trans)
    return trans


def random_walk_dense(cam_vec, aff_dense, beta=RW_BETA, logt=RW_LOGT):
    """psa's walk: cam_vec (C, hw) @ T^(2^logt), all in the dense matrix's dtype."""
    return torch.matmul(cam_vec.to(aff_dense), transition_power_dense(aff_dense, beta, logt))


@functools.lru_cache(maxsize=16)
def transition_pattern(feat_size, radius=PAIR_RADIUS, device=torch.device("cpu")):
    """The fixed sparsity pattern of T transposed on an h x w map, as CSR with int32
    indices on `device`: (order, crow, col, row_of). Stored entry i is entry order[i] of
    the concatenation [pairs (from, to), pairs mirrored, diagonal]; `row_of` is the CSR row
    of each stored entry. Cached per map size (VOC images share a few sizes), so a walk
    sorts nothing."""
    pairs = get_indices_in_radius(*feat_size, radius)
    area = feat_size[0] * feat_size[1]
    diag = np.arange(area)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1], diag])  # T[rows, cols]
    cols = np.concatenate([pairs[:, 1], pairs[:, 0], diag])
    order = np.lexsort((rows, cols))  # T^T is stored row by row: by cols, then rows
    counts = np.bincount(cols, minlength=area)
    crow = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return tuple(torch.from_numpy(a).to(device) for a in (
        order, crow, rows[order].astype(np.int32), np.repeat(diag, counts)))


def sparse_transition_t(aff, feat_size, beta=RW_BETA, radius=PAIR_RADIUS):
    """T transposed, T = A^beta / column sums, as a float64 sparse CSR tensor on the
    device of `aff` (D, M): one walk step is `T^T @ v^T`."""
    order, crow, col, row_of = transition_pattern(tuple(feat_size), radius, aff.device)
    area = feat_size[0] * feat_size[1]
    powered = aff.detach().reshape(-1).double() ** beta
    values = torch.cat([powered, powered,
                        torch.ones(area, dtype=torch.float64, device=aff.device)])[order]
    col_sums = torch.zeros(area, dtype=torch.float64, device=aff.device).index_add_(
        0, row_of, values)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values / col_sums[row_of], (area, area),
                                       check_invariants=False)


@contextmanager
def cpu_threads(count):
    """Run a block with `count` torch CPU threads. The 256 small sparse steps of a walk
    each end in a thread barrier: with one other busy process on 2 cores, 2 threads took
    0.8-2.1 s per 375x500 walk against 0.05 s on 1 thread (2 threads win only on an
    otherwise idle machine), so the CPU walk runs on SPARSE_CPU_THREADS."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def random_walk_sparse(cam_vec, aff, feat_size, beta=RW_BETA, logt=RW_LOGT,
                       radius=PAIR_RADIUS):
    """cam_vec @ T^(2^logt) by 2^logt sparse steps in float64 (on the device of `aff`;
    SPARSE_CPU_THREADS on the CPU); all-zero rows of cam_vec stay zero without being
    walked."""
    out = torch.zeros_like(cam_vec, dtype=torch.float32)
    active = torch.nonzero(cam_vec.abs().sum(dim=1) > 0).reshape(-1)
    if active.numel() == 0:
        return out
    threads = SPARSE_CPU_THREADS if aff.device.type == "cpu" else torch.get_num_threads()
    with cpu_threads(threads):
        step = sparse_transition_t(aff, feat_size, beta, radius)
        walked = cam_vec[active].to(device=step.device, dtype=torch.float64).T.contiguous()
        for _ in range(2 ** logt):
            walked = step @ walked
    out[active] = walked.T.to(out)
    return out


def random_walk(cam_vec, aff, feat_size, beta=RW_BETA, logt=RW_LOGT, method="sparse",
                radius=PAIR_RADIUS):
    """cam_vec (C, h*w) walked with the pair affinities `aff` (D, M) of an h x w feature map
    (`feat_size`); (C, h*w) float32. method "dense" reproduces psa's matrix squaring."""
    if method == "dense":
        return random_walk_dense(cam_vec, dense_affinity(aff, feat_size, radius), beta, logt)
    if method == "sparse":
        return random_walk_sparse(cam_vec, aff, feat_size, beta, logt, radius)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def padded_size(height, width, stride=OUTPUT_STRIDE):
    """Height and width rounded up to multiples of the stride (psa pads right/bottom)."""
    return -(-height // stride) * stride, -(-width // stride) * stride


def rw_scores(cam_dict, shape, alpha=RW_ALPHA, num_classes=NUM_CLASSES):
    """(num_classes + 1, H, W) float32: class c's CAM in channel c+1, channel 0 =
    (1 - max)^alpha (num_classes: foreground classes, VOC 20, COCO 80)."""
    scores = np.zeros((num_classes + 1,) + tuple(shape), np.float32)
    for cls, cam in cam_dict.items():
        scores[cls + 1] = cam
    scores[0] = (1 - np.max(scores[1:], axis=0)) ** alpha
    return scores


def cam_vector(scores, stride=OUTPUT_STRIDE):
    """Zero-pad (C, H, W) scores right/bottom to multiples of the stride (after the
    background was computed, as psa) and average-pool by the stride: (C, h*w) tensor."""
    height, width = scores.shape[1:]
    padded_h, padded_w = padded_size(height, width, stride)
    scores = torch.from_numpy(np.asarray(scores, np.float32))
    scores = F.pad(scores, (0, padded_w - width, 0, padded_h - height))
    return F.avg_pool2d(scores, stride, stride).reshape(scores.shape[0], -1)


def padded_input(rgb, stride=OUTPUT_STRIDE):
    """The normalised image zero-padded right/bottom to multiples of the stride (1, 3, Hp, Wp)."""
    height, width = rgb.shape[:2]
    padded_h, padded_w = padded_size(height, width, stride)
    x = torch.from_numpy(normalize_image(rgb)).unsqueeze(0)
    return F.pad(x, (0, padded_w - width, 0, padded_h - height))


def upsampled_scores(cam_rw, shape, stride=OUTPUT_STRIDE):
    """Walked (C, h*w) scores upsampled bilinearly (align_corners False) to the padded size
    and cropped to `shape` (H, W): (C, H, W)."""
    height, width = shape
    padded_h, padded_w = padded_size(height, width, stride)
    lowres = cam_rw.float().reshape(1, cam_rw.shape[0], padded_h // stride, padded_w // stride)
    up = F.interpolate(lowres, size=(padded_h, padded_w), mode="bilinear", align_corners=False)
    return up[0, :, :height, :width]


def scaled_walk_inputs(rgb, cam_dict, scale):
    """The uint8 image (PIL bicubic, as the CAM inputs) and the CAM dict (bilinear) resized
    by `scale` (Python round of each side, at least 1 px)."""
    height, width = np.shape(rgb)[:2]
    size = max(1, round(height * scale)), max(1, round(width * scale))
    if size == (height, width):
        return np.asarray(rgb), cam_dict
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8)).resize(size[::-1], Image.BICUBIC)
    cams = {k: F.interpolate(torch.from_numpy(np.asarray(v, np.float32))[None, None], size=size,
                             mode="bilinear", align_corners=False)[0, 0].numpy()
            for k, v in cam_dict.items()}
    return np.asarray(image), cams


@torch.inference_mode()
def random_walk_scores(net, rgb, cam_dict, alpha=RW_ALPHA, beta=RW_BETA, logt=RW_LOGT,
                       method="sparse", device="cpu", scale=RW_SCALE, num_classes=NUM_CLASSES,
                       precision=DEFAULT_PRECISION):
    """psa infer_aff.py for one image before the argmax: (num_classes + 1, H, W) float32
    tensor (num_classes: foreground classes).
    scale != 1 (not psa) walks on the image and CAMs resized by `scale` and resizes the
    walked scores back (bilinear): a finer 1/8 grid for small images. The affinity
    forward runs at `precision` (tool/core/precision.py); the walk itself is unchanged."""
    rgb = np.asarray(rgb)
    shape = rgb.shape[:2]
    if scale != 1:
        rgb, cam_dict = scaled_walk_inputs(rgb, cam_dict, scale)
    x = padded_input(rgb).to(device)
    feat_size = (x.shape[2] // OUTPUT_STRIDE, x.shape[3] // OUTPUT_STRIDE)
    with precision_context(x.device, precision):
        aff = net(x)[0].float()
    cam_vec = cam_vector(rw_scores(cam_dict, rgb.shape[:2], alpha, num_classes)).to(device)
    scores = upsampled_scores(random_walk(cam_vec, aff, feat_size, beta, logt, method),
                              rgb.shape[:2])
    if tuple(rgb.shape[:2]) != tuple(shape):
        scores = F.interpolate(scores[None], size=tuple(shape), mode="bilinear",
                               align_corners=False)[0]
    return scores


def random_walk_label(net, rgb, cam_dict, alpha=RW_ALPHA, beta=RW_BETA, logt=RW_LOGT,
                      method="sparse", device="cpu", scale=RW_SCALE, num_classes=NUM_CLASSES,
                      precision=DEFAULT_PRECISION):
    """The random-walk label map of one image: (H, W) uint8, 0 background, c+1 class c."""
    scores = random_walk_scores(net, rgb, cam_dict, alpha, beta, logt, method, device, scale,
                                num_classes, precision)
    return torch.argmax(scores, dim=0).cpu().numpy().astype(np.uint8)
