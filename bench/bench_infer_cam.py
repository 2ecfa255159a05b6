"""Cost of InferCam per image relative to the plain multi-scale CAM of infer_cls.py,
measured in the same run on the same images and network.

The network is a randomly initialised ResNet-38 classifier at width 0.125 (CPU-sized), the
images are demo-dataset look-alikes (data/make_demo_dataset.py). InferCam's cost is the
split (one multi-scale CAM, mass centres, boxes) plus the refinement of the four crops
(up to 5 rounds each). The random network rarely needs more than one round, so the worst
case (always 5 rounds: --min_shrink 0) is measured too. Prints seconds per image, the
ratios and the rounds per crop; no timed asserts."""
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.make_demo_dataset import multi_hot, render_sample  # noqa: E402
from network import resnet38_cls  # noqa: E402
from tool.cam import infercam# noqa: E402
from tool.cam.multiscale import multiscale_cam, present_classes  # noqa: E402

WIDTH = 0.125  # channel multiplier of the benchmark network
IMAGES = 6
QUICK_IMAGES = 2
SEED = 0
THREADS = 1  # on a shared machine, more threads mostly measure waiting


def demo_images(count):
    """(rgb, label) pairs rendered like the demo dataset."""
    samples = [render_sample(np.random.default_rng([SEED, k])) for k in range(count)]
    return [(s.rgb, multi_hot(s)) for s in samples]


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def infercam_image(net, rgb, label, min_shrink=infercam.MIN_SHRINK):
    """split_img.py then infer_cam.py on one image (crops cut from the image, no JPEG)."""
    norm_cam = multiscale_cam(net, rgb, label)
    centers = infercam.mass_centers(norm_cam, present_classes(label))
    crops = [infercam.crop(rgb, box) for box in infercam.split_boxes(centers, *rgb.shape[:2])]
    return infercam.infer_cam(net, crops, label, rgb.shape[:2], min_shrink=min_shrink)


def run(quick=False):
    """Seconds per image of infer_cls's CAM and of InferCam, their ratio, rounds per crop."""
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        torch.manual_seed(SEED)
        net = resnet38_cls.Net(width=WIDTH).eval()
        images = demo_images(QUICK_IMAGES if quick else IMAGES)
        multiscale_cam(net, *images[0])  # warm-up
        t_cls = sum(timed(multiscale_cam, net, rgb, label)[0] for rgb, label in images)
        runs = [timed(infercam_image, net, rgb, label) for rgb, label in images]
        t_worst = sum(timed(infercam_image, net, rgb, label, min_shrink=0.0)[0]
                      for rgb, label in images)
    finally:
        torch.set_num_threads(threads)
    t_infercam = sum(t for t, _ in runs)
    rounds = [len(s) for _, (_, shrinks) in runs for s in shrinks]
    return {"images": len(images), "width": WIDTH, "torch_threads": THREADS,
            "mean_image_hw": np.mean([rgb.shape[:2] for rgb, _ in images], axis=0).tolist(),
            "load_avg_1min": os.getloadavg()[0],
            "sec_per_image_infer_cls": t_cls / len(images),
            "sec_per_image_infercam": t_infercam / len(images),
            "infercam_over_infer_cls": t_infercam / t_cls,
            "sec_per_image_infercam_5_rounds": t_worst / len(images),
            "infercam_5_rounds_over_infer_cls": t_worst / t_cls,
            "rounds_per_crop": float(np.mean(rounds))}


def main():
    res = run(quick="--quick" in sys.argv[1:])
    h, w = res["mean_image_hw"]
    print(f"bench_infer_cam: {res['images']} demo-like images (mean {h:.0f}x{w:.0f}), ResNet-38 "
          f"width {res['width']}, {res['torch_threads']} thread, load {res['load_avg_1min']:.1f}")
    print(f"  infer_cls CAM : {res['sec_per_image_infer_cls']:.3f} s/image")
    print(f"  InferCam      : {res['sec_per_image_infercam']:.3f} s/image "
          f"({res['rounds_per_crop']:.2f} rounds per crop)")
    print(f"  ratio         : {res['infercam_over_infer_cls']:.1f}x")
    print(f"  5 rounds/crop : {res['sec_per_image_infercam_5_rounds']:.3f} s/image, "
          f"{res['infercam_5_rounds_over_infer_cls']:.1f}x")
    return res


if __name__ == "__main__":
    main()
