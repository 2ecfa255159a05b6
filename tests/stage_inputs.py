"""Small inputs for every stage script, for the bad-input table and the kill-and-resume
tests: a tiny demo dataset, seeded random weights of each network at width 0.125, CAM
dicts and la/ha CRF dicts made from the ground truth, and helpers to run a stage's
main(argv) as the command line does and to snapshot output folders."""
import contextlib
import hashlib
import io
import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from data.make_demo_dataset import make_demo_dataset
from network import resnet38_aff, resnet38_cls
from network.AuxSegNet import SegNet
from network.seg_models import build_model
from tool.core.checkpoint import save_checkpoint
from tool.core.cli import run_main
from tool.core.io import read_label_png, save_npy
from tool.data.voc import load_cls_labels, read_image_list

WIDTH = "0.125"
# a tqdm progress line ("stage:  50%|###  | 1/2 [00:00<00:00, 5.0it/s]")
PROGRESS_LINE = re.compile(r"\[\d\d:\d\d")


def make_stage_inputs(root):
    root = Path(root)
    voc = root / "voc"
    make_demo_dataset(voc, seed=2, num_train=4, num_val=2, min_size=72, max_size=96)
    weights = {}
    for name, net in (("cls", lambda: resnet38_cls.Net(width=float(WIDTH))),
                      ("aff", lambda: resnet38_aff.Net(width=float(WIDTH))),
                      ("aux", lambda: SegNet(num_classes=21, width=float(WIDTH))),
                      ("seg", lambda: build_model("largefov", 21, float(WIDTH)))):
        torch.manual_seed(0)
        weights[name] = root / f"{name}.pth"
        save_checkpoint(weights[name], net())
    labels = load_cls_labels(voc / "cls_labels.npy")
    ids = read_image_list(voc / "train.txt") + read_image_list(voc / "val.txt")
    for img_id in ids:
        seg = read_label_png(voc / "SegmentationClass" / f"{img_id}.png")
        cams = {int(c): (seg == c + 1).astype(np.float32) * 0.9
                for c in np.nonzero(labels[img_id])[0]}
        save_npy(root / "cam" / f"{img_id}.npy", cams)
        top = np.max(np.stack(list(cams.values())), axis=0)
        for kind, alpha in (("la", 4), ("ha", 32)):
            save_npy(root / kind / f"{img_id}.npy",
                     {0: (1 - top) ** alpha, **{c + 1: cam for c, cam in cams.items()}})
    return SimpleNamespace(root=root, voc=voc, weights=weights, cam=root / "cam",
                           la=root / "la", ha=root / "ha", ids=ids, labels=labels,
                           train_list=voc / "train.txt", val_list=voc / "val.txt",
                           cls_labels=voc / "cls_labels.npy", images=voc / "JPEGImages",
                           gt=voc / "SegmentationClass", sal=voc / "SAL")


def run_main_captured(module, argv):
    """module.main(argv) (argv items turned into strings) with its stdout captured:
    (return value, printed text)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        value = module.main([str(a) for a in argv])
    return value, out.getvalue()


def run_cli(main, argv, capsys):
    """main(argv) under run_main, as `python script.py argv` runs it: (exit code, stderr
    lines that are not progress bars). A run that exits 0 returns code None."""
    capsys.readouterr()
    try:
        run_main(main, [str(a) for a in argv])
        code = None
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    lines = [seg for line in err.split("\n") for seg in [line.split("\r")[-1]]
             if seg.strip() and not PROGRESS_LINE.search(seg)]
    return code, lines


def snapshot(*paths):
    """{file: sha1 of its bytes} under the given files/folders (absent ones: None)."""
    state = {}
    for path in map(Path, paths):
        if path.is_file():
            state[str(path)] = hashlib.sha1(path.read_bytes()).hexdigest()
        elif path.is_dir():
            for folder, _, files in os.walk(path):
                for name in files:
                    file = Path(folder) / name
                    state[str(file)] = hashlib.sha1(file.read_bytes()).hexdigest()
        else:
            state[str(path)] = None
    return state
