"""psa on a real 375x500 VOC photo with the full-width recipe networks: the classifier's
CAM forward, AffinityNet's forward, the random walk (psa's dense T^256 by squaring
against the sparse steps), infer_aff per image (forward + walk, what a user pays), and
what --precision bf16 changes in the outputs (CAMs, labels after the walk and after the
AuxSegNet fusion).

The CAM is the single-scale one (scale 1, no flip: the first forward of infer_cls.py's
eight); the fusion's saliency is the photo's ground-truth foreground."""
import numpy as np
import torch

from common import conv_gflop, peak_rss_increase, real_photo, recipe_net, timed
from network import resnet38_aff, resnet38_cls
from tool.auxsegnet.fusion import fuse_cam_saliency
from tool.cam import multiscale as camlib
from tool.core.io import IGNORE_LABEL
from tool.core.precision import PRECISIONS, precision_context
from tool.psa import random_walk as rw

CPU = torch.device("cpu")
WARMUP_HW = (64, 64)  # a small forward first: one-off start-up costs stay out of the runs
STRONG_WALK = {"alpha": 8, "beta": 1, "logt": 5}  # golden "strongwalk": the walk moves labels


@torch.inference_mode()
def single_scale_cam(net, rgb, label, precision):
    """infer_cls.py's first input (scale 1, not flipped): normalised (20, H, W) float32."""
    x = camlib.scaled_inputs(rgb, (1.0,))
    total = camlib.summed_cams(net, x, rgb.shape[:2], label, CPU, [False], precision)
    return camlib.normalize_cam(total).numpy()


def affinity(net, x, precision):
    with torch.inference_mode(), precision_context(CPU, precision):
        return net(x)[0].float()


def walk_label(cam_vec, aff, feat_size, shape, method, beta=rw.RW_BETA, logt=rw.RW_LOGT):
    cam_rw = rw.random_walk(cam_vec, aff, feat_size, beta, logt, method)
    return rw.upsampled_scores(cam_rw, shape).argmax(dim=0).numpy()


def sparse_walk_threads(count, walk):
    """walk() with the sparse walk on `count` CPU threads instead of the library's."""
    library = rw.SPARSE_CPU_THREADS
    rw.SPARSE_CPU_THREADS = count
    try:
        return walk()
    finally:
        rw.SPARSE_CPU_THREADS = library


def warm_up(net, call):
    with torch.inference_mode():
        call(net, torch.zeros((1, 3) + WARMUP_HW))


def measure_cams(rgb, label):
    """The classifier's single-scale CAM forward at each precision: ({figure: value}, {precision:
    CAMs}); the network is freed on return."""
    net = recipe_net(resnet38_cls.Net)
    warm_up(net, lambda n, x: n.forward_cam(x))
    x_cam = torch.from_numpy(camlib.scaled_inputs(rgb, (1.0,))[0][None])
    with torch.inference_mode():
        out = {"cam_gflop": conv_gflop(net, lambda: net.forward_cam(x_cam))}
    cams = {}
    for precision in PRECISIONS:
        out[f"cam_forward_{precision}"], cams[precision] = timed(
            lambda: single_scale_cam(net, rgb, label, precision), warmup=0)
    return out, cams


def measure_affinities(rgb):
    """AffinityNet's forward at each precision: ({figure: value}, {precision: affinities},
    feature size); the network is freed on return."""
    net = recipe_net(resnet38_aff.Net)
    warm_up(net, lambda n, x: n.features(x))
    x_aff = rw.padded_input(rgb)
    feat_size = (x_aff.shape[2] // rw.OUTPUT_STRIDE, x_aff.shape[3] // rw.OUTPUT_STRIDE)
    out, affs = {}, {}
    for precision in PRECISIONS:
        out[f"aff_forward_{precision}"], affs[precision] = timed(
            lambda: affinity(net, x_aff, precision), warmup=0)
    return out, affs, feat_size


def run(quick=False):
    rgb, label, gt = real_photo()
    shape = rgb.shape[:2]
    out = {"image_hw": shape, "threads": torch.get_num_threads()}
    cam_figures, cams = measure_cams(rgb, label)
    aff_figures, affs, feat_size = measure_affinities(rgb)
    out.update(cam_figures)
    out.update(aff_figures)

    vecs = {p: rw.cam_vector(rw.rw_scores(camlib.cam_dict_from_array(cams[p], label), shape))
            for p in PRECISIONS}
    labels = {}
    for method in rw.METHODS:  # the peak over the runs is one walk's: each frees its memory
        (out[f"walk_{method}"], labels[method]), out[f"walk_{method}_peak_bytes"] = \
            peak_rss_increase(lambda: timed(
                lambda: walk_label(vecs["fp32"], affs["fp32"], feat_size, shape, method),
                warmup=int(method == "sparse")))
    out["walk_sparse_2_threads"], _ = sparse_walk_threads(2, lambda: timed(
        lambda: walk_label(vecs["fp32"], affs["fp32"], feat_size, shape, "sparse")))
    unwalked = rw.upsampled_scores(vecs["fp32"], shape).argmax(dim=0).numpy()
    strong_vec = rw.cam_vector(rw.rw_scores(camlib.cam_dict_from_array(cams["fp32"], label),
                                            shape, STRONG_WALK["alpha"]))
    strong = {m: walk_label(strong_vec, affs["fp32"], feat_size, shape, m,
                            STRONG_WALK["beta"], STRONG_WALK["logt"]) for m in rw.METHODS}
    strong_unwalked = rw.upsampled_scores(strong_vec, shape).argmax(dim=0).numpy()
    bf16_walk = walk_label(vecs["bf16"], affs["bf16"], feat_size, shape, "sparse")
    sal = ((gt > 0) & (gt != IGNORE_LABEL)).astype(np.float32)
    fused = {p: fuse_cam_saliency(cams[p], sal, label) for p in PRECISIONS}
    out.update({
        "nodes": feat_size[0] * feat_size[1],
        "walk_identical_labels": float((labels["dense"] == labels["sparse"]).mean()),
        "walk_changed_pixels": float((labels["dense"] != unwalked).mean()),
        "strong_walk_identical_labels": float((strong["dense"] == strong["sparse"]).mean()),
        "strong_walk_changed_pixels": float((strong["dense"] != strong_unwalked).mean()),
        "bf16_cam_max_diff": float(np.abs(cams["bf16"] - cams["fp32"]).max()),
        "bf16_aff_max_diff": float((affs["bf16"] - affs["fp32"]).abs().max()),
        "bf16_cam_pred_identical": float((camlib.cam_prediction(cams["bf16"]) ==
                                          camlib.cam_prediction(cams["fp32"])).mean()),
        "bf16_walk_identical": float((bf16_walk == labels["sparse"]).mean()),
        "bf16_fusion_identical": float((fused["bf16"] == fused["fp32"]).mean()),
    })
    return out
