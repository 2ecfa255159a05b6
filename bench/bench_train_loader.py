"""AuxSegNet training throughput with the DataLoader's worker processes against loading
in the training process, measured in the same run.

A width-0.125 SegNet trains on the CPU on the demo dataset with train_AuxAff's recipe
(batch 4, crop 321, per-batch scale, flip, crop). Both runs see the same batches
(BatchPlan) from the same weights; the first step of each is a warm-up and is not timed.
Also reports the loaders alone (no training, more batches), which bounds what workers
can hide: on a CPU the network's own compute dominates, and the workers compete with it
for cores.
Prints images/s and ratios; no timed asserts."""
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.make_demo_dataset import make_demo_dataset  # noqa: E402
from network.AuxSegNet import SegNet  # noqa: E402
from tool.auxsegnet import training  # noqa: E402
from tool.data.voc import load_cls_labels, read_image_list  # noqa: E402

WIDTH = 0.125
BATCH = 4  # train_AuxAff.py
CROP = 321  # train_AuxAff.py
WORKERS = 2
IMAGES = 16
IMAGE_SIDES = (300, 500)  # demo images about the size of VOC's (500 x 375)
TRAIN_STEPS, QUICK_TRAIN_STEPS = 4, 2
LOAD_STEPS, QUICK_LOAD_STEPS = 40, 12  # enough that the workers' prefetch does not dominate
THREADS = 1  # the training process; loader workers use the other core


def make_loader(root, workers, steps):
    ids = read_image_list(root / "train.txt")
    dataset = training.AuxTrainDataset(
        ids, root / "JPEGImages", root / "SegmentationClassAug", root / "SAL",
        load_cls_labels(root / "cls_labels.npy"), root / "cls_labels.npy", CROP)
    plan = training.BatchPlan(len(ids), BATCH, 0, steps + 1)
    return DataLoader(dataset, batch_sampler=plan, num_workers=workers,
                      generator=torch.Generator())


def images_per_s(loader, step_fn):
    """Throughput over all batches but the first (warm-up: worker start, first batch)."""
    batches = iter(loader)
    step_fn(next(batches))
    start, count = time.perf_counter(), 0
    for batch in batches:
        step_fn(batch)
        count += batch["img"].shape[0]
    return count / (time.perf_counter() - start)


def trainer(state):
    torch.manual_seed(0)
    net = SegNet(width=WIDTH)
    net.load_state_dict(state)
    net.train()
    optimizer = training.make_optimizer(net, lr=7e-4, wt_dec=1e-5, max_step=100)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return lambda batch: training.train_step(net, optimizer, scaler, batch)


def run(quick=False):
    torch.set_num_threads(THREADS)
    train_steps = QUICK_TRAIN_STEPS if quick else TRAIN_STEPS
    load_steps = QUICK_LOAD_STEPS if quick else LOAD_STEPS
    state = SegNet(width=WIDTH).state_dict()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_demo_dataset(root, num_train=IMAGES, num_val=1, min_size=IMAGE_SIDES[0],
                          max_size=IMAGE_SIDES[1])
        loading = {w: images_per_s(make_loader(root, w, load_steps), lambda b: None)
                   for w in (0, WORKERS)}
        training = {w: images_per_s(make_loader(root, w, train_steps), trainer(state))
                    for w in (0, WORKERS)}
    return {"train_steps_timed": train_steps, "load_steps_timed": load_steps, "batch": BATCH,
            "crop": CROP, "width": WIDTH, "torch_threads": THREADS, "cpu_count": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)), "load_avg_1min": os.getloadavg()[0],
            "load_only_imgs_per_s_inline": loading[0],
            f"load_only_imgs_per_s_{WORKERS}_workers": loading[WORKERS],
            "train_imgs_per_s_inline": training[0],
            f"train_imgs_per_s_{WORKERS}_workers": training[WORKERS],
            "train_speedup_workers": training[WORKERS] / training[0]}


def main():
    res = run(quick="--quick" in sys.argv[1:])
    print(f"bench_train_loader: AuxSegNet width {res['width']}, batch {res['batch']}, crop "
          f"{res['crop']}, {res['train_steps_timed']} timed training steps; machine "
          f"{res['usable_cpus']}/{res['cpu_count']} CPUs, load {res['load_avg_1min']:.1f}")
    print(f"  loading only : inline {res['load_only_imgs_per_s_inline']:.1f} img/s, "
          f"{WORKERS} workers {res[f'load_only_imgs_per_s_{WORKERS}_workers']:.1f} img/s")
    print(f"  training     : inline {res['train_imgs_per_s_inline']:.2f} img/s, "
          f"{WORKERS} workers {res[f'train_imgs_per_s_{WORKERS}_workers']:.2f} img/s "
          f"({res['train_speedup_workers']:.2f}x)")
    return res


if __name__ == "__main__":
    main()
