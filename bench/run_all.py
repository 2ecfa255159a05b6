"""Run every benchmark and print one table of ratios measured in the same run, with the
machine it ran on. `--quick` uses fewer images/steps; `--json_out` keeps the raw results.

    python bench/run_all.py [--quick] [--json_out bench.json]
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import bench_cam_batching, bench_crf, bench_infer_cam, bench_random_walk, \
    bench_train_loader  # noqa: E402

# (name, module, baseline, candidate, what the ratio says, function of the result → (ratio, note))
BENCHMARKS = (
    ("random walk", bench_random_walk, "dense T^256 by squaring (psa)", "sparse 256 steps",
     lambda r: (r["speedup_sparse"], f"{100 * r['identical_label_fraction']:.4f} % identical "
                                     f"labels; {r['sec_per_image_dense']:.2f} vs "
                                     f"{r['sec_per_image_sparse']:.2f} s/image")),
    ("CRF workers", bench_crf, "1 process", "2 processes",
     lambda r: (r["speedup_2_workers"], f"{r['sec_per_image_1_worker']:.2f} vs "
                                        f"{r['sec_per_image_2_workers']:.2f} s/image")),
    ("CAM batching", bench_cam_batching, "one forward per input", "mirror pairs batched",
     lambda r: (r["speedup_batched"], f"max |diff| {r['max_abs_diff']:.1e}")),
    ("data loading", bench_train_loader, "inline loader", "DataLoader workers",
     lambda r: (r["train_speedup_workers"],
                f"AuxSegNet training {r['train_imgs_per_s_inline']:.2f} → "
                f"{r[f'train_imgs_per_s_{bench_train_loader.WORKERS}_workers']:.2f} images/s")),
    ("InferCam cost", bench_infer_cam, "infer_cls", "infer_cam",
     lambda r: (r["infercam_over_infer_cls"], f"cost ratio (lower is cheaper); 5 rounds forced: "
                f"{r['infercam_5_rounds_over_infer_cls']:.1f}x; "
                f"{r['rounds_per_crop']:.2f} rounds/crop")),
)


def machine():
    return (f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"load {os.getloadavg()[0]:.1f}").replace("  ", " ")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer images and steps")
    p.add_argument("--json_out", default=None)
    args = p.parse_args(argv)
    rows, raw = [], {}
    for name, module, base, cand, summarise in BENCHMARKS:
        start = time.perf_counter()
        result = module.run(quick=args.quick)
        raw[name] = result
        ratio, note = summarise(result)
        rows.append((name, base, cand, ratio, note, time.perf_counter() - start))
        print(f"{name}: {ratio:.2f}x ({note})", flush=True)
    print(f"\nmachine: {machine()}\n")
    print("| benchmark | baseline | candidate | ratio | notes |")
    print("| --- | --- | --- | --- | --- |")
    for name, base, cand, ratio, note, _ in rows:
        print(f"| {name} | {base} | {cand} | {ratio:.2f}x | {note} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"machine": machine(), "results": raw},
                                                  indent=1))
    return raw


if __name__ == "__main__":
    main()
