"""Dense CRF throughput with 1 and 2 worker processes, measured in the same run.

The job is psa's low-alpha CRF (infer_cls.py: background (1 - max)^4 over the CAMs of 2
classes, 10 iterations) on synthetic VOC-sized images. Prints the speed-up of 2 workers
over 1 and the machine it ran on; no timed asserts."""
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tool.core.workers import map_with_workers
from tool.seg.crf import crf_with_bg_power  # noqa: E402

VOC_SIZE = (375, 500)  # (H, W) of a typical PASCAL VOC image
LOW_ALPHA = 4  # psa infer_cls.py --low_alpha
IMAGES = 32  # enough that the pool start-up (a few seconds) is amortised
QUICK_IMAGES = 8
CLASSES = (11, 14)  # two present classes, as in a dog + person image


def smooth_field(rs, shape, cells=6):
    """A smooth random field in [0, 1]: a coarse grid upsampled by repetition and blurred."""
    coarse = rs.uniform(size=(cells, cells))
    fine = np.kron(coarse, np.ones((shape[0] // cells + 1, shape[1] // cells + 1)))
    fine = fine[:shape[0], :shape[1]]
    for axis in (0, 1):
        fine = (np.roll(fine, 7, axis) + fine + np.roll(fine, -7, axis)) / 3
    return (fine - fine.min()) / (np.ptp(fine) + 1e-12)


def synthetic_case(seed, shape=VOC_SIZE):
    """An RGB uint8 image and a CAM dict {class: HxW float32} from one seed."""
    rs = np.random.RandomState(seed)
    img = np.stack([smooth_field(rs, shape) for _ in range(3)], axis=-1)
    img = (255 * img + rs.normal(0, 8, img.shape)).clip(0, 255).astype(np.uint8)
    cams = {c: smooth_field(rs, shape).astype(np.float32) for c in CLASSES}
    return img, cams


def crf_job(seed):
    """One image's CRF (the data is made in the worker, as a real job reads its files)."""
    img, cams = synthetic_case(seed)
    return float(crf_with_bg_power(img, cams, LOW_ALPHA)[0].mean())


def timed(workers, seeds):
    start = time.perf_counter()
    results = list(map_with_workers(crf_job, seeds, workers))
    return time.perf_counter() - start, results


def run(quick=False):
    """Seconds per image with 1 and 2 workers (pool start-up included) and their ratio."""
    seeds = list(range(QUICK_IMAGES if quick else IMAGES))
    t1, r1 = timed(1, seeds)
    t2, r2 = timed(2, seeds)
    if not np.allclose(r1, r2):
        raise RuntimeError("1-worker and 2-worker CRF results differ")
    return {"images": len(seeds), "image_hw": VOC_SIZE, "cpu_count": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)), "load_avg_1min": os.getloadavg()[0],
            "sec_per_image_1_worker": t1 / len(seeds), "sec_per_image_2_workers": t2 / len(seeds),
            "speedup_2_workers": t1 / t2}


def main():
    res = run(quick="--quick" in sys.argv[1:])
    print(f"bench_crf: psa CRF, {res['images']} images {res['image_hw'][0]}x{res['image_hw'][1]}; "
          f"machine {res['usable_cpus']}/{res['cpu_count']} CPUs, load {res['load_avg_1min']:.1f}")
    print(f"  1 worker : {res['sec_per_image_1_worker']:.3f} s/image")
    print(f"  2 workers: {res['sec_per_image_2_workers']:.3f} s/image")
    print(f"  speed-up : {res['speedup_2_workers']:.2f}x")
    return res


if __name__ == "__main__":
    main()
