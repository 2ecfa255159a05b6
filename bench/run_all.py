"""Every benchmark, one table: the original code's path against this project's, fp32 and
bf16, on inputs like real ones (full-width networks with the golden recipe weights, a
real 375x500 VOC photo, the golden InferCam images), each figure the median of 3 runs
with their spread (min–max), beside the machine's matmul peaks measured in the same run.
Then the GPU section, or "skipped: no GPU".

    python bench/run_all.py [--quick] [--json_out bench.json]
"""
import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import torch

import bench_infer_cam
import bench_psa
import bench_train
import gpu
from common import Timing, golden, have_shared, load_text, machine_text, matmul_peak, ratio_text


def summed(*timings):
    """Run k of each timing added up (e.g. forward run k + walk run k of this benchmark
    run): the time of the whole per-image job, run by run."""
    return Timing(tuple(sum(runs) for runs in zip(*(t.runs for t in timings))))


def mib(nbytes):
    return "n/a" if nbytes is None else f"{nbytes / 2 ** 20:.0f} MiB"


def pct(fraction):
    return f"{100 * fraction:.2f} %"


def psa_rows(r, peak):
    fwd32, fwd16 = r["cam_forward_fp32"], r["cam_forward_bf16"]
    h, w = r["image_hw"]
    dense, sparse = r["walk_dense"], r["walk_sparse"]
    orig_aff = summed(r["aff_forward_fp32"], dense)
    ours_aff = summed(r["aff_forward_fp32"], sparse)
    bf16_aff = summed(r["aff_forward_bf16"], sparse)
    share = r["aff_forward_fp32"].median / ours_aff.median
    return [
        (f"ResNet-38 forward_cam, {h}×{w} photo, batch 1", "same code (fp32)", fwd32.text(),
         "1.00x", fwd16.text(), ratio_text(fwd32, fwd16),
         f"fp32 at {100 * r['cam_gflop'] / fwd32.median / peak:.0f} % of the sgemm peak "
         f"({r['cam_gflop']:.0f} GFLOP)"),
        (f"random walk alone, psa defaults, {h}×{w} ({r['nodes']} nodes)",
         f"dense T^256: {dense.text()}", f"sparse: {sparse.text()}", ratio_text(dense, sparse),
         "—", "—",
         f"{pct(r['walk_identical_labels'])} identical labels (the walk changed "
         f"{pct(r['walk_changed_pixels'])} of the pixels; at β 1, t 32 it changed "
         f"{pct(r['strong_walk_changed_pixels'])}, labels {pct(r['strong_walk_identical_labels'])} "
         f"identical); peak memory {mib(r['walk_dense_peak_bytes'])} vs "
         f"{mib(r['walk_sparse_peak_bytes'])}; dense on {r['threads']} threads, sparse on 1 "
         f"(on 2: {r['walk_sparse_2_threads'].text()})"),
        ("infer_aff per image (affinity forward + walk)", orig_aff.text(), ours_aff.text(),
         ratio_text(orig_aff, ours_aff), bf16_aff.text(), ratio_text(orig_aff, bf16_aff),
         f"the fp32 affinity forward is {100 * share:.0f} % of the project's time"),
        ("bf16 effect on psa outputs", "—", "—", "—", "—", "—",
         f"single-scale CAM max |diff| {r['bf16_cam_max_diff']:.3f} (CAMs in [0, 1]); "
         f"identical labels: CAM prediction {pct(r['bf16_cam_pred_identical'])}, random walk "
         f"{pct(r['bf16_walk_identical'])}, CAM + saliency fusion "
         f"{pct(r['bf16_fusion_identical'])}"),
    ]


def train_rows(r):
    rows = []
    for name in bench_train.CPU_NETWORKS:
        fp32, bf16 = r[f"{name} fp32"], r[f"{name} bf16"]
        rows.append((f"{name} train step, crop {r['crop']}, batch {r['batch']}",
                     "same code (fp32)", fp32.text(), "1.00x", bf16.text(),
                     ratio_text(fp32, bf16), "forward + loss + backward + SGD update"))
    return rows


def infercam_rows(r):
    rows = []
    for k, (img_id, classes) in enumerate(zip(r["images"], r["classes"])):
        released, fp32, bf16 = (r[name][k] for name in ("released", "fp32", "bf16"))
        rows.append((f"InferCam infer_cam.py per image, golden {img_id} ({classes} "
                     f"class{'es' if classes > 1 else ''})", released.text(), fp32.text(),
                     ratio_text(released, fp32), bf16.text(), ratio_text(released, bf16),
                     f"forwards {r['forwards_released'][k]} vs {r['forwards_fp32'][k]}"))
    golden_ok = "match" if r["fp32_matches_golden"] else "DIFFER FROM"
    rows[-1] = rows[-1][:-1] + (
        rows[-1][-1] + f"; {r['rounds_per_crop_fp32']:.2f} rounds per refined crop; fp32 "
        f"CAMs {golden_ok} the released outputs (max |diff| {r['max_diff_golden_fp32']:.1e}); "
        f"bf16 CAM max |diff| {r['bf16_cam_max_diff']:.3f}",)
    total = {name: sum(t.median for t in r[name])
             for name in ("infer_cls", "released_split_cam", "released", "fp32", "bf16")}
    split = total["released_split_cam"]
    rows.append(("InferCam cost (split_img + infer_cam) in infer_cls runs",
                 f"{(split + total['released']) / split:.1f}x",
                 f"{total['fp32'] / total['infer_cls']:.1f}x", "—",
                 f"{total['bf16'] / total['infer_cls']:.1f}x", "—",
                 "each side's own infer_cls (released: one forward per input; project: mirror "
                 "pairs batched); the released split_img recomputes that CAM, split_img "
                 "--cam_dir reuses it"))
    return rows


def print_table(header, rows):
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def gpu_rows(r):
    rows = []
    for name in bench_train.GPU_NETWORKS:
        fp32, amp = r[f"train {name} fp32"], r[f"train {name} amp"]
        batch = gpu.TRAIN_BATCH
        rows.append((f"{name} training, crop {bench_train.CROP}, batch {batch}",
                     f"{batch / fp32.median:.1f} img/s", f"{batch / amp.median:.1f} img/s",
                     ratio_text(fp32, amp), "fp32 vs AMP (autocast fp16 + GradScaler)"))
    dense, sparse = r["walk dense"], r["walk sparse"]
    rows.append(("random walk, 375×500 photo", f"dense {dense.text()}", f"sparse {sparse.text()}",
                 ratio_text(dense, sparse),
                 f"{pct(r['walk identical labels'])} identical labels; peak memory "
                 f"{mib(r['walk dense peak bytes'])} vs {mib(r['walk sparse peak bytes'])}"))
    rows.append(("multi-scale CAM (infer_cls), 375×500 photo",
                 f"{1 / r['cam fp32'].median:.2f} img/s", f"{1 / r['cam bf16'].median:.2f} img/s",
                 ratio_text(r["cam fp32"], r["cam bf16"]), "fp32 vs bf16"))
    n = r["infercam images"]
    rows.append((f"InferCam infer_cam, {n} golden images",
                 f"{n / r['infercam fp32'].median:.2f} img/s",
                 f"{n / r['infercam bf16'].median:.2f} img/s",
                 ratio_text(r["infercam fp32"], r["infercam bf16"]), "fp32 vs bf16"))
    one, everyone = r["ddp 1"], r[f"ddp {r['gpus']}"]
    if isinstance(one, float) and isinstance(everyone, float):
        efficiency = everyone / (r["gpus"] * one)
        rows.append((f"DDP classifier training, torchrun on {r['gpus']} GPU(s)",
                     f"1 GPU {one:.1f} img/s", f"{r['gpus']} GPUs {everyone:.1f} img/s",
                     f"{everyone / one:.2f}x", f"scaling efficiency {100 * efficiency:.0f} %"))
    else:
        rows.append(("DDP classifier training, torchrun", str(one), str(everyone), "—", ""))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one InferCam image (development)")
    p.add_argument("--infercam_images", nargs="+", default=None, metavar="ID",
                   help="golden images for the InferCam rows (default "
                        f"{' '.join(bench_infer_cam.IMAGES)}; 'all': the four, ~2x longer)")
    p.add_argument("--json_out", default=None, help="write every raw figure here")
    args = p.parse_args(argv)
    started, load_before = time.perf_counter(), load_text()
    print(f"{datetime.date.today().isoformat()}: {machine_text()}", flush=True)
    if not have_shared():
        raise SystemExit(f"the benchmarks need {golden.GOLDEN} and {golden.TESTDATA} "
                         "(recipe weights, real photos)")
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    print(f"matmul peak: fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s", flush=True)
    raw = {}
    infercam_ids = (bench_infer_cam.ALL_IMAGES if args.infercam_images == ["all"]
                    else args.infercam_images)
    sections = (("psa", bench_psa.run, lambda r: psa_rows(r, peak32)),
                ("train", bench_train.run, train_rows),
                ("infercam", lambda quick: bench_infer_cam.run(quick, infercam_ids),
                 infercam_rows))
    rows = []
    for name, run, to_rows in sections:
        start = time.perf_counter()
        raw[name] = run(quick=args.quick)
        rows += to_rows(raw[name])
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(f"\nCPU: {machine_text()}; matmul peak fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} "
          f"GFLOP/s; {load_before} at the start, {load_text()} at the end\n")
    print_table(("work", "original path", "this project, fp32", "ratio", "this project, bf16",
                 "ratio", "notes"), rows)
    raw["gpu"] = gpu.run(quick=args.quick)
    if raw["gpu"] is None:
        print("\nGPU section: skipped: no GPU")
    else:
        print(f"\nGPU section: {raw['gpu']['device']}\n")
        print_table(("work", "baseline", "candidate", "ratio", "notes"), gpu_rows(raw["gpu"]))
    print(f"\nmake bench: {time.perf_counter() - started:.0f} s")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(raw, indent=1, default=lambda o: getattr(
            o, "runs", str(o))))
    return raw


if __name__ == "__main__":
    main()
