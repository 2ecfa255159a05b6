"""The GPU section of `make bench`, run when CUDA is present: fp32 vs AMP training
throughput (classifier, AuxSegNet, DeepLab-LargeFOV), the random walk sparse vs dense on
the GPU (labels, time, peak memory), CAM and InferCam images/s in fp32 and bf16, and
DistributedDataParallel scaling under torchrun over every visible GPU. Full-width recipe
networks, a real 375x500 photo and the golden images, as the CPU section."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import bench_infer_cam
import bench_train
from common import golden, real_photo, recipe_net, sync, timed
from network import resnet38_aff, resnet38_cls
from tool.cam import infercam
from tool.cam import multiscale as camlib
from tool.core.precision import PRECISIONS
from tool.psa import random_walk as rw

TRAIN_BATCH = 8
TRAIN_RUNS = 5
DDP_STEPS = 10
DDP_SCRIPT = Path(__file__).with_name("ddp_train.py")
DDP_TIMEOUT_S = 240


def available():
    return torch.cuda.is_available()


def timed_cuda(fn, device, runs=3, warmup=1):
    """`timed` with the device synchronised at the end of each call."""
    def call():
        result = fn()
        sync(device)
        return result
    return timed(call, runs=runs, warmup=warmup)


def training(device, out):
    for name, make in bench_train.GPU_NETWORKS.items():
        timings = bench_train.time_steps(make, ("fp32", "amp"), device, TRAIN_BATCH, TRAIN_RUNS)
        for mode, timing in timings.items():
            out[f"train {name} {mode}"] = timing
        torch.cuda.empty_cache()


def random_walk(device, out):
    rgb, label, _ = real_photo()
    cls_net = recipe_net(resnet38_cls.Net).to(device)
    cam = camlib.multiscale_cam(cls_net, rgb, label, device=device)
    del cls_net
    aff_net = recipe_net(resnet38_aff.Net).to(device)
    x = rw.padded_input(rgb).to(device)
    with torch.inference_mode():
        aff = aff_net(x)[0]
    del aff_net
    torch.cuda.empty_cache()
    feat_size = (x.shape[2] // rw.OUTPUT_STRIDE, x.shape[3] // rw.OUTPUT_STRIDE)
    shape = rgb.shape[:2]
    cam_vec = rw.cam_vector(rw.rw_scores(camlib.cam_dict_from_array(cam, label), shape)).to(device)
    labels = {}
    for method in rw.METHODS:
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        timing, walked = timed_cuda(lambda: rw.random_walk(cam_vec, aff, feat_size,
                                                           method=method), device)
        out[f"walk {method}"] = timing
        out[f"walk {method} peak bytes"] = torch.cuda.max_memory_allocated(device) - base
        labels[method] = rw.upsampled_scores(walked, shape).argmax(dim=0).cpu().numpy()
    out["walk identical labels"] = float((labels["dense"] == labels["sparse"]).mean())


def cam_and_infercam(device, out):
    net = recipe_net(resnet38_cls.Net).to(device)
    rgb, label, _ = real_photo()
    cls_labels = np.load(golden.GOLDEN / "dataset" / "cls_labels.npy", allow_pickle=True).item()
    cases = [bench_infer_cam.golden_case(i, cls_labels) for i in bench_infer_cam.ALL_IMAGES]
    for precision in PRECISIONS:
        out[f"cam {precision}"], _ = timed_cuda(
            lambda: camlib.multiscale_cam(net, rgb, label, device=device, precision=precision),
            device)
        out[f"infercam {precision}"], _ = timed_cuda(
            lambda: [infercam.infer_cam(net, crops, lab, img.shape[:2], device=device,
                                        precision=precision) for img, crops, lab in cases],
            device)
    out["infercam images"] = len(cases)


def ddp(out):
    """Images/s of DDP classifier training on 1 GPU and on all visible ones (torchrun)."""
    count = torch.cuda.device_count()
    out["gpus"] = count
    for nproc in sorted({1, count}):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", str(DDP_SCRIPT), "--steps", str(DDP_STEPS),
               "--batch", str(TRAIN_BATCH)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=DDP_TIMEOUT_S,
                              env={**os.environ, "PYTHONPATH": str(golden.REPO)})
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            out[f"ddp {nproc}"] = f"failed (exit {done.returncode}): " \
                                  f"{(done.stderr.strip().splitlines() or [''])[-1]}"
        else:
            out[f"ddp {nproc}"] = json.loads(lines[-1])["images_per_s"]


def run(quick=False):
    """The GPU figures, or None without CUDA."""
    if not available():
        return None
    device = torch.device("cuda")
    out = {"device": torch.cuda.get_device_name(device)}
    for part in (training, random_walk, cam_and_infercam):
        part(device, out)
        torch.cuda.empty_cache()
    ddp(out)
    return out
