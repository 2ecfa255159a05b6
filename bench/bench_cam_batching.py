"""Multi-scale CAM: each image's mirror pair run as one batch of 2 (tool/cam/multiscale.py) against
the original's one forward per input, on demo-sized images, in the same run."""
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from network import resnet38_cls  # noqa: E402
from tool.cam import multiscale as camlib# noqa: E402

WIDTH = 0.125
IMAGE_HW = (112, 160)
IMAGES, QUICK_IMAGES = 6, 2
THREADS = 2


def one_by_one(net, rgb, label):
    inputs = camlib.with_flips(camlib.scaled_inputs(rgb))
    device = torch.device("cpu")
    total = sum(camlib.summed_cams(net, [x], rgb.shape[:2], label, device, [i % 2 == 1])
                for i, x in enumerate(inputs))
    return camlib.normalize_cam(total).numpy()


def run(quick=False):
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    net = resnet38_cls.Net(width=WIDTH).eval()
    rng = np.random.default_rng(0)
    label = np.zeros(20, np.float32)
    label[[2, 7]] = 1
    seconds = {"batched": 0.0, "one_by_one": 0.0}
    max_diff = 0.0
    images = QUICK_IMAGES if quick else IMAGES
    with torch.inference_mode():
        for _ in range(images):
            rgb = rng.integers(0, 256, IMAGE_HW + (3,), dtype=np.uint8)
            start = time.perf_counter()
            batched = camlib.multiscale_cam(net, rgb, label)
            seconds["batched"] += time.perf_counter() - start
            start = time.perf_counter()
            single = one_by_one(net, rgb, label)
            seconds["one_by_one"] += time.perf_counter() - start
            max_diff = max(max_diff, float(np.abs(batched - single).max()))
    return {"images": images, "image_hw": IMAGE_HW, "width": WIDTH, "threads": THREADS,
            "load_avg_1min": os.getloadavg()[0],
            "sec_per_image_one_by_one": seconds["one_by_one"] / images,
            "sec_per_image_batched": seconds["batched"] / images,
            "speedup_batched": seconds["one_by_one"] / seconds["batched"],
            "max_abs_diff": max_diff}


def main():
    res = run(quick="--quick" in sys.argv[1:])
    print(f"bench_cam_batching: {res['images']} images {res['image_hw']}, width {res['width']}")
    print(f"  one forward per input: {res['sec_per_image_one_by_one']:.3f} s/image")
    print(f"  mirror pairs batched : {res['sec_per_image_batched']:.3f} s/image "
          f"({res['speedup_batched']:.2f}x, max |diff| {res['max_abs_diff']:.1e})")
    return res


if __name__ == "__main__":
    main()
