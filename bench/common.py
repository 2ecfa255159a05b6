"""What every benchmark shares: timing (>= 3 runs, median and spread), the machine's
matmul peaks measured in the same run, peak memory of a call, and the inputs (the golden
recipe weights of ../shared/golden, real VOC photos of ../shared/testdata)."""
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # golden.py: the recipe weights and the data paths
import golden  # noqa: E402
from tool.core.io import read_image, read_label_png  # noqa: E402

RUNS = 3  # timed runs per figure (after one warm-up)
PEAK_SIZE = 2048  # square matmul for the peaks
PEAK_RUNS = 5  # best of
REAL_PHOTO = "2011_000025"  # a 375x500 VOC photo (bus, car): the typical VOC size
RSS_SAMPLE_S = 0.002


@dataclass(frozen=True)
class Timing:
    """Seconds of `runs` timed runs."""
    runs: tuple

    @property
    def median(self):
        return statistics.median(self.runs)

    @property
    def spread(self):
        return min(self.runs), max(self.runs)

    def text(self, unit="s"):
        lo, hi = self.spread
        return f"{self.median:.3g} {unit} ({lo:.3g}–{hi:.3g})"


def timed(fn, runs=RUNS, warmup=1):
    """(Timing of `runs` calls of fn(), the last result) after `warmup` untimed calls."""
    result = None
    for _ in range(warmup):
        result = fn()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - start)
    return Timing(tuple(seconds)), result


def ratio_text(baseline, candidate):
    """Median ratio and its spread (slowest baseline / fastest candidate and the reverse)."""
    lo = baseline.spread[0] / candidate.spread[1]
    hi = baseline.spread[1] / candidate.spread[0]
    return f"{baseline.median / candidate.median:.2f}x ({lo:.2f}–{hi:.2f})"


def matmul_peak(dtype=torch.float32, size=PEAK_SIZE, runs=PEAK_RUNS, device="cpu"):
    """Best GFLOP/s of a size x size matmul in `dtype` with torch's threads."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = float("inf")
    for _ in range(runs + 1):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def rss_bytes():
    """Resident set size of this process (Linux /proc), or None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def peak_rss_increase(fn):
    """(result of fn(), peak resident memory above the level before the call, in bytes,
    sampled every 2 ms; None where /proc is unavailable)."""
    before = rss_bytes()
    if before is None:
        return fn(), None
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(RSS_SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = fn()
    finally:
        done.set()
        sampler.join()
    return result, max(peak[0], rss_bytes()) - before


def conv_gflop(net, call):
    """GFLOP of the convolutions in one call(): 2 x output elements x kernel volume."""
    total = [0]

    def count(module, inputs, output):
        total[0] += 2 * output.numel() * module.weight[0].numel()

    hooks = [m.register_forward_hook(count) for m in net.modules()
             if isinstance(m, torch.nn.Conv2d)]
    try:
        call()
    finally:
        for hook in hooks:
            hook.remove()
    return total[0] / 1e9


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_text():
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cpu_name()}, {usable} usable CPUs, {torch.get_num_threads()} torch threads, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def load_text():
    return "load average {:.2f} / {:.2f} / {:.2f} (1 / 5 / 15 min)".format(*os.getloadavg())


def have_shared():
    return golden.GOLDEN.is_dir() and golden.TESTDATA.is_dir()


def recipe_net(cls, **kwargs):
    """A full-width network with the golden recipe weights (realistic activation sizes,
    ../shared/golden/README.md §2), in eval mode."""
    return golden.load_recipe(cls(**kwargs))


def real_photo(img_id=REAL_PHOTO):
    """(uint8 RGB, 20-class label, ground-truth label map) of a real VOC photo."""
    root = golden.TESTDATA / "voc_real"
    labels = np.load(root / "cls_labels.npy", allow_pickle=True).item()
    return (read_image(root / "JPEGImages" / f"{img_id}.jpg"), labels[img_id],
            read_label_png(root / "SegmentationClass" / f"{img_id}.png"))
