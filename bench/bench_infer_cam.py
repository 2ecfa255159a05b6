"""InferCam with the full-width recipe classifier on the golden images, from the crops the
released split_img.py wrote (../shared/golden/dataset/infercam_splits): the released
loop (every crop refined, twins included, each of the 8 inputs of a round through its own
forward) against infer_cam.py (identical crops once, the running crops of a round
together, equal-shape inputs in one batch), in fp32 and bf16; and the cost of the whole
of InferCam (split_img + infer_cam) against infer_cls.py's multi-scale CAM, with
split_img recomputing that CAM (released) or reusing it (--cam_dir)."""
import time

import numpy as np
import torch

from common import RUNS, Timing, golden, recipe_net
from network import resnet38_cls
from tool.cam import infercam
from tool.cam.multiscale import (CAM_SCALES, multiscale_cam, normalize_cam, present_classes,
                                 scaled_inputs, summed_cams, with_flips)
from tool.core.io import read_image
from tool.core.precision import PRECISIONS

ALL_IMAGES = ("2007_000001", "2007_000002", "2007_000003", "2007_000004")
# One image without repeated crops (1 class: four different crops) and one with (3 classes:
# four whole images), within make bench's 10 minutes; --infercam_images all runs the four.
IMAGES = ("2007_000001", "2007_000004")
QUICK_IMAGES = ("2007_000001",)
CPU = torch.device("cpu")
GOLDEN_CAM_ATOL = 5e-5  # golden README §5, normalised CAMs


class CountingNet(torch.nn.Module):
    """A network whose forward_cam calls are counted."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward_cam(self, x):
        self.calls += 1
        return self.net.forward_cam(x)


def released_refine(net, rgb, label):
    """The released infer_cam.py loop on one crop (baseline): each round, one forward per
    input; the same erasing and stopping rules as tool/infercam.refine_crop_cam."""
    inputs = with_flips(scaled_inputs(rgb, CAM_SCALES))
    flipped = [i % 2 == 1 for i in range(len(inputs))]
    size = rgb.shape[:2]
    cam_matrix = np.zeros((len(label),) + size, np.float64)
    left = np.ones(size, bool)
    rounds = 0
    for round_index in range(infercam.MAX_ROUNDS):
        batch = inputs if round_index == 0 else infercam.erased_inputs(inputs, left, flipped)
        total = sum(summed_cams(net, [x], size, label, CPU, [f]) for x, f in zip(batch, flipped))
        cam_matrix = np.maximum(cam_matrix, normalize_cam(total).numpy())
        new_left = cam_matrix.max(axis=0) < infercam.ERASE_THRESHOLD
        shrink = (int(left.sum()) - int(new_left.sum())) / left.size
        left, rounds = new_left, rounds + 1
        if shrink < infercam.MIN_SHRINK:
            break
    return cam_matrix, rounds


@torch.inference_mode()
def released_infer_cam(net, crops, label, image_hw):
    return infercam.merge_crop_cams([released_refine(net, c, label)[0] for c in crops], image_hw)


@torch.inference_mode()
def released_multiscale_cam(net, rgb, label):
    """The released split_img.py's CAM: one forward per input."""
    inputs = with_flips(scaled_inputs(rgb, CAM_SCALES))
    total = sum(summed_cams(net, [x], rgb.shape[:2], label, CPU, [i % 2 == 1])
                for i, x in enumerate(inputs))
    return normalize_cam(total).numpy()


def golden_case(img_id, labels):
    root = golden.GOLDEN / "dataset"
    rgb = read_image(root / "JPEGImages" / f"{img_id}.jpg")
    crops = [read_image(root / "infercam_splits" / f"{img_id}_{n}.jpg")
             for n in range(1, infercam.NUM_CROPS + 1)]
    return rgb, crops, labels[img_id]


def per_image(net, images, fn, runs=RUNS):
    """([Timing per image] of fn(*case) (a run = every image once), [forwards per image],
    the last run's results)."""
    seconds, forwards, results = [[] for _ in images], [0] * len(images), None
    for _ in range(runs):
        results = []
        for k, case in enumerate(images):
            calls, start = net.calls, time.perf_counter()
            results.append(fn(*case))
            seconds[k].append(time.perf_counter() - start)
            forwards[k] = net.calls - calls
    return [Timing(tuple(s)) for s in seconds], forwards, results


def run(quick=False, ids=None):
    ids = ids or (QUICK_IMAGES if quick else IMAGES)
    labels = np.load(golden.GOLDEN / "dataset" / "cls_labels.npy", allow_pickle=True).item()
    images = [golden_case(i, labels) for i in ids]
    reference = golden.load_golden("e2e_infercam_infer.npz")
    net = CountingNet(recipe_net(resnet38_cls.Net))
    out = {"images": list(ids), "classes": [len(present_classes(c[2])) for c in images]}
    first_rgb, _, first_label = images[0]
    multiscale_cam(net, first_rgb, first_label)  # warm-up
    paths = {
        "infer_cls": lambda rgb, crops, lab: multiscale_cam(net, rgb, lab),
        "released_split_cam": lambda rgb, crops, lab: released_multiscale_cam(net, rgb, lab),
        "released": lambda rgb, crops, lab: released_infer_cam(net, crops, lab, rgb.shape[:2]),
        **{p: (lambda rgb, crops, lab, p=p: infercam.infer_cam(net, crops, lab, rgb.shape[:2],
                                                                precision=p))
           for p in PRECISIONS}}
    results = {}
    for name, fn in paths.items():
        out[name], out[f"forwards_{name}"], results[name] = per_image(net, images, fn)
    released = results["released"]
    merged = {p: [m for m, _ in results[p]] for p in PRECISIONS}
    for p in PRECISIONS:
        out[f"rounds_per_crop_{p}"] = float(np.mean(
            [len(s) for _, shrinks in results[p] for s in shrinks]))
    out["max_diff_released_fp32"] = max(float(np.abs(a - b).max())
                                        for a, b in zip(released, merged["fp32"]))
    out["max_diff_golden_fp32"] = max(
        float(np.abs(m[present_classes(lab)] - reference[f"{i}__cam"]).max())
        for i, m, (_, _, lab) in zip(ids, merged["fp32"], images))
    out["fp32_matches_golden"] = out["max_diff_golden_fp32"] <= GOLDEN_CAM_ATOL
    out["bf16_cam_max_diff"] = max(float(np.abs(a - b).max())
                                   for a, b in zip(merged["bf16"], merged["fp32"]))
    return out
