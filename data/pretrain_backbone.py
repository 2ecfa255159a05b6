"""Pretrain the demo's small ResNet-38 trunk (the ImageNet stand-in; not part of `make demo`).

Draws a single-label classification set of procedurally generated part-based objects
(data/pretraining.py: many classes, none of them a demo class), trains the trunk on it
with every layer and BatchNorm trainable, and writes the trunk's weights as float16
(`--out`, resnet38d keys, what train_cls.py/train_aff.py --weights read) plus a JSON record
beside it: the command, seed, settings, accuracy, run time and the file's SHA-256, which
tests/test_pretrained_backbone.py checks.

    python data/pretrain_backbone.py --out data/resnet38_demo_pretrained.pth --workers 1

is the command that made the shipped file (about 22 minutes on one core); the script is
deterministic at a fixed thread count.
"""
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python data/pretrain_backbone.py`

from data import pretraining as pt  # noqa: E402
from tool.core.checkpoint import save_checkpoint  # noqa: E402
from tool.core.cli import positive_int, progress, run_main, script_parser  # noqa: E402
from tool.core.io import save_json  # noqa: E402
from tool.core.workers import map_with_workers  # noqa: E402

DEFAULT_OUT = "data/resnet38_demo_pretrained.pth"


def build_parser():
    p = script_parser(__doc__, first_paragraph=True)
    p.add_argument("--out", default=DEFAULT_OUT, help="trunk weights (float16 state dict)")
    p.add_argument("--width", type=float, default=0.125, help="the demo's channel width")
    data = p.add_argument_group("pretraining set")
    data.add_argument("--num_classes", type=positive_int, default=100)
    data.add_argument("--per_class", type=positive_int, default=40, help="training images per class")
    data.add_argument("--val_per_class", type=positive_int, default=6)
    data.add_argument("--size", type=positive_int, default=80, help="image side (px)")
    optim = p.add_argument_group("optimisation (ImageNet-style SGD)")
    optim.add_argument("--epochs", type=positive_int, default=16,
                       help="the shipped trunk: 16 (61.7 %% top-1; 8 epochs stop near 42 %%)")
    optim.add_argument("--batch_size", type=positive_int, default=64)
    optim.add_argument("--lr", type=float, default=0.1, help="peak lr (cosine schedule)")
    optim.add_argument("--warmup_steps", type=int, default=100)
    optim.add_argument("--momentum", type=float, default=0.9)
    optim.add_argument("--wt_dec", type=float, default=5e-4)
    optim.add_argument("--label_smoothing", type=float, default=0.1)
    optim.add_argument("--pad", type=int, default=8, help="random translation (px)")
    env = p.add_argument_group("environment")
    env.add_argument("--seed", type=int, default=0)
    env.add_argument("--threads", type=positive_int, default=1,
                     help="torch CPU threads (the shipped file was made with 1; other counts "
                          "sum in another order and give other bytes)")
    env.add_argument("--workers", type=positive_int, default=2, help="processes drawing the set")
    return p


def render_split(classes, per_class, size, seed, split, workers):
    items = pt.set_items(classes, per_class, size, seed, split)
    images = np.empty((len(items), size, size, 3), np.uint8)
    labels = np.empty(len(items), np.int64)
    for i, (label, image) in enumerate(progress(map_with_workers(pt.render_item, items, workers),
                                                f"draw {split}", total=len(items))):
        images[i], labels[i] = image, label
    return images, labels


def main(argv=None):
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    classes = pt.pretrain_classes(args.num_classes, args.seed)
    train = render_split(classes, args.per_class, args.size, args.seed, "train", args.workers)
    val = render_split(classes, args.val_per_class, args.size, args.seed, "val", args.workers)
    draw_seconds = time.perf_counter() - start

    net = pt.PretrainNet(args.num_classes, args.width)
    optimizer = torch.optim.SGD(pt.parameter_groups(net, args.wt_dec), lr=args.lr,
                                momentum=args.momentum, nesterov=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "threads", "workers")}
    steps_per_epoch = len(train[0]) // args.batch_size
    total = steps_per_epoch * args.epochs
    history, step = [], 0
    bar = progress(range(total), "pretrain", total=total)
    for epoch in range(args.epochs):
        step, loss = pt.train_epoch(net, optimizer, *train, epoch, settings, step, total, bar)
        acc = pt.accuracy(net, *val)
        history.append({"epoch": epoch + 1, "loss": round(loss, 4), "val_top1": round(acc, 2)})
        bar.write(f"epoch {epoch + 1}/{args.epochs}: loss {loss:.4f}, val top-1 {acc:.2f} %")
    bar.close()

    save_checkpoint(args.out, pt.trunk_state_fp16(net))
    seconds = time.perf_counter() - start
    record = {
        "weights": os.path.basename(args.out), "sha256": pt.sha256_of(args.out),
        "command": "python data/pretrain_backbone.py " + shlex.join(argv if argv is not None
                                                                   else sys.argv[1:]),
        "settings": settings, "classes": args.num_classes,
        "train_images": len(train[0]), "val_images": len(val[0]),
        "val_top1": history[-1]["val_top1"], "history": history,
        "seconds": {"draw": round(draw_seconds), "total": round(seconds)},
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {args.threads} threads, "
                   f"torch {torch.__version__}",
    }
    save_json(os.path.splitext(args.out)[0] + ".json", record)
    print(f"pretrain_backbone: val top-1 {history[-1]['val_top1']:.2f} % over {args.num_classes} "
          f"classes; {seconds:.0f} s; weights {args.out} (sha256 {record['sha256'][:12]}...)")


if __name__ == "__main__":
    run_main(main)
