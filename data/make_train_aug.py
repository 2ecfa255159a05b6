"""The VOC 2012 `train_aug` list (10,582 ids): SBD train + SBD val + VOC train, minus
VOC val, sorted; optionally the SegmentationClassAug label PNGs (SBD's `cls/<id>.mat`
`GTcls.Segmentation`, and VOC's own SegmentationClass PNG, with its 255 boundaries,
wherever VOC has one).

    python data/make_train_aug.py --voc12_root VOCdevkit/VOC2012 \
        --sbd_root benchmark_RELEASE --out train_aug.txt \
        --label_dir VOCdevkit/VOC2012/SegmentationClassAug
"""
import os
import sys
from pathlib import Path

import numpy as np
import scipy.io

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python data/make_train_aug.py`

from tool.core.cli import ArgumentParser, add_overwrite_arg, progress, run_main  # noqa: E402
from tool.core.io import (InputError, check_output_file, output_done, read_label_png,  # noqa: E402
                          save_label_png, save_text)
from tool.data.voc import NUM_CLASSES, find_label, read_image_list  # noqa: E402

VOC_SPLITS = os.path.join("ImageSets", "Segmentation")


def sbd_dataset_dir(sbd_root):
    """SBD's `dataset` folder (holding train.txt, val.txt, cls/), given it or its parent
    `benchmark_RELEASE`."""
    for folder in (os.path.join(sbd_root, "dataset"), sbd_root):
        if os.path.isfile(os.path.join(folder, "train.txt")):
            return folder
    raise InputError(f"{os.path.join(sbd_root, 'dataset', 'train.txt')}: SBD list not found "
                     "(is --sbd_root the benchmark_RELEASE folder?)")


def train_aug_ids(sbd_ids, voc_train, voc_val):
    """(SBD train + SBD val | VOC train) - VOC val, sorted."""
    return sorted((set(sbd_ids) | set(voc_train)) - set(voc_val))


def list_lines(ids, psa_format=False):
    """Bare ids, or psa's `/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png` pairs."""
    if psa_format:
        return [f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png" for i in ids]
    return list(ids)


def write_list(path, ids, psa_format=False):
    save_text(path, "".join(line + "\n" for line in list_lines(ids, psa_format)))


def read_sbd_mat(mat_path):
    """SBD class segmentation (H, W) uint8, values 0..20, from `GTcls.Segmentation`."""
    if not os.path.isfile(mat_path):
        raise InputError(f"{mat_path}: SBD .mat file not found")
    try:
        gt = scipy.io.loadmat(mat_path, squeeze_me=True, struct_as_record=False)["GTcls"]
        seg = np.asarray(gt.Segmentation)
    except Exception as exc:  # scipy raises many kinds for a broken or foreign file
        raise InputError(f"{mat_path}: no readable GTcls.Segmentation "
                         f"({exc.__class__.__name__}: {exc})") from None
    if seg.ndim != 2 or seg.min(initial=0) < 0 or seg.max(initial=0) > NUM_CLASSES:
        raise InputError(f"{mat_path}: GTcls.Segmentation must be a 2-D map with values "
                         f"0..{NUM_CLASSES}")
    return seg.astype(np.uint8)


def aug_label(img_id, sbd_cls_dir, voc_label_dir, voc_ids):
    """The SegmentationClassAug map of one id: VOC's own label where VOC has one."""
    if img_id in voc_ids:
        return read_label_png(find_label(voc_label_dir, img_id), NUM_CLASSES + 1)
    return read_sbd_mat(os.path.join(sbd_cls_dir, img_id + ".mat"))


def write_aug_labels(label_dir, sbd_ids, sbd_cls_dir, voc_ids, voc_label_dir, overwrite=False):
    """Label PNGs for every SBD and VOC-segmentation id; returns how many were written."""
    written = 0
    voc_ids = set(voc_ids)
    for img_id in progress(sorted(set(sbd_ids) | voc_ids), "SegmentationClassAug"):
        path = os.path.join(label_dir, img_id + ".png")
        if not output_done(path, overwrite):
            save_label_png(path, aug_label(img_id, sbd_cls_dir, voc_label_dir, voc_ids))
            written += 1
    return written


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voc12_root", required=True,
                        help="VOC2012 folder (ImageSets/Segmentation/{train,val}.txt)")
    parser.add_argument("--sbd_root", required=True,
                        help="SBD benchmark_RELEASE folder (dataset/{train,val}.txt, dataset/cls)")
    parser.add_argument("--out", default="train_aug.txt", help="list file to write")
    parser.add_argument("--psa_format", action="store_true",
                        help="write psa's '/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png' "
                             "lines instead of bare ids")
    parser.add_argument("--label_dir", default=None,
                        help="also write SegmentationClassAug label PNGs into this folder")
    add_overwrite_arg(parser, "rewrite existing label PNGs")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    check_output_file(args.out, "--out")
    sbd = sbd_dataset_dir(args.sbd_root)
    sbd_ids = read_image_list(os.path.join(sbd, "train.txt")) + \
        read_image_list(os.path.join(sbd, "val.txt"))
    voc_train, voc_val = (read_image_list(os.path.join(args.voc12_root, VOC_SPLITS, name))
                          for name in ("train.txt", "val.txt"))
    ids = train_aug_ids(sbd_ids, voc_train, voc_val)
    write_list(args.out, ids, args.psa_format)
    print(f"wrote {args.out}: {len(ids)} ids")
    if args.label_dir:
        written = write_aug_labels(args.label_dir, sbd_ids, os.path.join(sbd, "cls"),
                                   voc_train + voc_val,
                                   os.path.join(args.voc12_root, "SegmentationClass"),
                                   args.overwrite)
        print(f"wrote {written} label PNGs into {args.label_dir}")


if __name__ == "__main__":
    run_main(main)
