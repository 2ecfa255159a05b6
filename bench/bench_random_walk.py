"""Random walk of psa infer_aff.py: the original dense matrix squaring against the sparse
propagation, on VOC-sized inputs, in the same run.

The affinities come from a synthetic feature map (piecewise-constant regions plus noise, so
pairs inside a region are strongly tied and pairs across a boundary are not) at the full
feature size of a 375x500 image (47x63, 2961 nodes); the CAMs are smooth random fields of
two classes. psa's defaults alpha 16, beta 8, logt 8. Prints the speed ratio, the fraction
of identical labels and how many pixels the walk changed; no timed asserts."""
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from network.resnet38_aff import pair_affinities  # noqa: E402
from network.resnet38d import OUTPUT_STRIDE  # noqa: E402
from tool.psa import random_walk as rw# noqa: E402

VOC_SIZE = (375, 500)  # (H, W) of a typical PASCAL VOC image
FEATURE_CHANNELS = 16
REGIONS = 6  # region seeds of the synthetic feature map
FEATURE_NOISE = 0.01
CLASSES = (11, 14)  # dog, person
IMAGES = 3
QUICK_IMAGES = 1
THREADS = 2


def synthetic_features(rs, feat_size):
    """(1, C, h, w): each pixel takes the random feature vector of its nearest region seed,
    plus a little noise."""
    h, w = feat_size
    seeds = rs.uniform(size=(REGIONS, 2)) * (h, w)
    yy, xx = np.mgrid[:h, :w]
    dist = (yy[None] - seeds[:, 0, None, None]) ** 2 + (xx[None] - seeds[:, 1, None, None]) ** 2
    region = dist.argmin(axis=0)
    vectors = rs.uniform(size=(REGIONS, FEATURE_CHANNELS))
    noise = rs.normal(0, FEATURE_NOISE, (FEATURE_CHANNELS, h, w))
    return torch.from_numpy((vectors[region].transpose(2, 0, 1) + noise)[None].astype(np.float32))


def smooth_cam(rs, shape, cells=5):
    """A smooth field in [0, 1]: a coarse random grid upsampled bilinearly."""
    coarse = torch.from_numpy(rs.uniform(size=(1, 1, cells, cells)).astype(np.float32))
    fine = torch.nn.functional.interpolate(coarse, size=shape, mode="bilinear", align_corners=False)
    return fine[0, 0].numpy()


def synthetic_case(seed, shape=VOC_SIZE):
    """(pair affinities (34, M), feature size, CAM dict) from one seed."""
    rs = np.random.RandomState(seed)
    feat_size = tuple(n // OUTPUT_STRIDE for n in rw.padded_size(*shape))
    aff = pair_affinities(synthetic_features(rs, feat_size))[0]
    cams = {c: smooth_cam(rs, shape) for c in CLASSES}
    return aff, feat_size, cams


def walk_labels(cam_vec, aff, feat_size, shape, method):
    cam_rw = rw.random_walk(cam_vec, aff, feat_size, rw.RW_BETA, rw.RW_LOGT, method)
    return rw.upsampled_scores(cam_rw, shape).argmax(dim=0).numpy()


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def run(quick=False):
    """Seconds per image for the dense and sparse walks, their ratio, and label agreement."""
    torch.set_num_threads(THREADS)
    seconds = {m: 0.0 for m in rw.METHODS}
    same = changed = total = 0
    images = QUICK_IMAGES if quick else IMAGES
    for seed in range(images):
        aff, feat_size, cams = synthetic_case(seed)
        cam_vec = rw.cam_vector(rw.rw_scores(cams, VOC_SIZE, rw.RW_ALPHA))
        labels = {}
        for method in rw.METHODS:
            sec, labels[method] = timed(walk_labels, cam_vec, aff, feat_size, VOC_SIZE, method)
            seconds[method] += sec
        unwalked = rw.upsampled_scores(cam_vec, VOC_SIZE).argmax(dim=0).numpy()
        same += int((labels["dense"] == labels["sparse"]).sum())
        changed += int((labels["dense"] != unwalked).sum())
        total += unwalked.size
    return {"images": images, "image_hw": VOC_SIZE, "nodes": feat_size[0] * feat_size[1],
            "threads": THREADS, "load_avg_1min": os.getloadavg()[0],
            "sec_per_image_dense": seconds["dense"] / images,
            "sec_per_image_sparse": seconds["sparse"] / images,
            "speedup_sparse": seconds["dense"] / seconds["sparse"],
            "identical_label_fraction": same / total,
            "fraction_changed_by_walk": changed / total}


def main():
    res = run(quick="--quick" in sys.argv[1:])
    print(f"bench_random_walk: {res['images']} images {res['image_hw'][0]}x{res['image_hw'][1]} "
          f"({res['nodes']} nodes), beta {rw.RW_BETA}, t = 2^{rw.RW_LOGT}; "
          f"{res['threads']} threads, load {res['load_avg_1min']:.1f}")
    print(f"  dense (psa) : {res['sec_per_image_dense']:.3f} s/image")
    print(f"  sparse      : {res['sec_per_image_sparse']:.3f} s/image")
    print(f"  speed-up    : {res['speedup_sparse']:.1f}x")
    print(f"  identical labels: {100 * res['identical_label_fraction']:.4f} % "
          f"(walk changed {100 * res['fraction_changed_by_walk']:.1f} % of the pixels)")
    return res


if __name__ == "__main__":
    main()
