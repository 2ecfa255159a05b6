"""The demo dataset (data/make_demo_dataset.py, VOC layout) in MS COCO 2014's layout:

    <out>/train2014/COCO_train2014_<id>.jpg   the images of train.txt (copies)
    <out>/val2014/COCO_val2014_<id>.jpg       the images of val.txt
    <out>/annotations/instances_train2014.json, instances_val2014.json
    <out>/SAL/<COCO name>.png                 the saliency maps, renamed

<id> is the demo id's digits in 12 (2026_000001 -> 002026000001). The JSONs list COCO's
80 categories with their real ids (1..90 with gaps); each VOC class becomes the COCO
category of its name (aeroplane -> airplane, tvmonitor -> tv, ...).

The demo has no instance masks (its Annotations XML holds boxes only), so the instances
are the connected components of each class in the label PNGs (SegmentationClassAug):
an object split by an occluder becomes two instances. Their segmentations are, by
annotation id % 3, pixel-exact polygons (compressed RLE where the instance has a hole,
which polygons cannot leave out), uncompressed RLE or compressed RLE. The 255 band of
the label PNGs becomes crowd regions (uncompressed RLE, the class of the nearest object),
which data/make_coco.py maps back to 255, so its label PNGs and cls_labels.npy match the
demo's up to the renumbering of the classes.

    python data/make_demo_dataset.py --root demo_data
    python data/demo_to_coco.py --root demo_data --out demo_coco
    python data/make_coco.py --coco_root demo_coco --out demo_coco_wsss

A rerun keeps the image and saliency copies already there (--overwrite redoes them) and
rewrites the JSONs."""
import os
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python data/demo_to_coco.py`

from tool.core.cli import progress, run_main, script_parser  # noqa: E402
from tool.core.io import (InputError, check_output_folder, link_file, output_done,  # noqa: E402
                          read_image, read_label_png, save_json)
from tool.data.coco import image_label  # noqa: E402
from tool.data.coco_annotations import (VOC_TO_COCO_CATEGORY, coco_categories,  # noqa: E402
                                        label_annotations)
from tool.data.voc import (NUM_CLASSES, find_label, get_image_label, load_cls_labels,  # noqa: E402
                           read_image_list, voc_dirs)

YEAR = "2014"
SPLITS = ("train", "val")
ID_DIGITS = 12
SAL_DIR = "SAL"
INFO = {"description": "wsss demo dataset (synthetic) in MS COCO 2014 layout, made by "
                       "data/demo_to_coco.py", "version": "1.0", "year": 2026}


def coco_image_id(demo_id, list_path):
    """The COCO image id of a demo id: its digits (2026_000001 -> 2026000001)."""
    if not re.fullmatch(r"[0-9_]*[0-9][0-9_]*", demo_id):
        raise InputError(f"{list_path}: image id {demo_id!r} is not digits and '_' "
                         "(COCO image ids are numbers)")
    digits = demo_id.replace("_", "")
    if len(digits.lstrip("0")) > ID_DIGITS:
        raise InputError(f"{list_path}: image id {demo_id!r} has more than {ID_DIGITS} digits")
    return int(digits)


def coco_file_stem(split, image_id):
    return f"COCO_{split}{YEAR}_{image_id:0{ID_DIGITS}d}"


def coco_image_label(voc_label):
    """The 80-class multi-hot of a 20-class VOC one, by VOC_TO_COCO_CATEGORY."""
    return image_label([{"category_id": VOC_TO_COCO_CATEGORY[c]}
                        for c in np.flatnonzero(voc_label > 0)], "VOC_TO_COCO_CATEGORY")


def convert_image(dirs, out, split, demo_id, image_id, first_ann_id, overwrite):
    """Copies one image (and its saliency map) and returns (image record, [(annotation,
    segmentation kind)], copies made)."""
    stem = coco_file_stem(split, image_id)
    src = os.path.join(dirs["images"], demo_id + ".jpg")
    height, width = read_image(src).shape[:2]
    label_path = find_label(dirs["labels"], demo_id)
    label = read_label_png(label_path, NUM_CLASSES + 1, (height, width))
    copies = [(src, os.path.join(out, f"{split}{YEAR}", stem + ".jpg"))]
    if dirs["saliency"]:
        copies.append((find_label(dirs["saliency"], demo_id, "saliency map"),
                       os.path.join(out, SAL_DIR, stem + ".png")))
    made = 0
    for copy_src, dst in copies:
        if not output_done(dst, overwrite):
            link_file(copy_src, dst, copy=True)
            made += 1
    record = {"id": image_id, "file_name": stem + ".jpg", "height": height, "width": width}
    return record, label_annotations(label, image_id, first_ann_id, label_path), made


def listed_images(root):
    """[(split, demo id, COCO image id)] of train.txt and val.txt; ids unique over both."""
    images, seen = [], {}
    for split in SPLITS:
        list_path = os.path.join(root, f"{split}.txt")
        for demo_id in read_image_list(list_path):
            image_id = coco_image_id(demo_id, list_path)
            if image_id in seen:
                raise InputError(f"{list_path}: image id {demo_id} gives COCO id {image_id}, "
                                 f"as {seen[image_id]} does (ids must be unique over the lists)")
            seen[image_id] = demo_id
            images.append((split, demo_id, image_id))
    return images


def demo_to_coco(root, out, overwrite=False):
    """Write the COCO layout of the demo dataset at `root` under `out`; returns
    {"names": {demo id: COCO file stem}, "kinds": Counter of the segmentation kinds
    written (and "crowd" regions), "label_mismatches": [demo ids whose classes in the
    label PNG differ from cls_labels.npy's], "copied": files copied, "saliency": whether
    there was a SAL/ folder}."""
    dirs = voc_dirs(root)
    if dirs["labels"] is None:
        raise InputError(f"{os.path.join(root, 'SegmentationClassAug')}: label folder not found")
    labels_path = os.path.join(root, "cls_labels.npy")
    cls_labels = load_cls_labels(labels_path, NUM_CLASSES)
    result = {"names": {}, "kinds": Counter(), "label_mismatches": [], "copied": 0,
              "saliency": dirs["saliency"] is not None}
    records = {split: {"images": [], "annotations": []} for split in SPLITS}
    next_ann_id = 1  # COCO annotation ids are unique over both splits
    for split, demo_id, image_id in progress(listed_images(root), "demo_to_coco"):
        record, anns, made = convert_image(dirs, out, split, demo_id, image_id, next_ann_id,
                                           overwrite)
        next_ann_id += len(anns)
        records[split]["images"].append(record)
        records[split]["annotations"] += [ann for ann, _ in anns]
        result["kinds"].update("crowd" if ann["iscrowd"] else kind for ann, kind in anns)
        result["copied"] += made
        result["names"][demo_id] = os.path.splitext(record["file_name"])[0]
        found = image_label([ann for ann, _ in anns], "demo_to_coco")
        if not np.array_equal(found, coco_image_label(get_image_label(cls_labels, demo_id,
                                                                      labels_path))):
            result["label_mismatches"].append(demo_id)
    for split in SPLITS:
        save_json(os.path.join(out, "annotations", f"instances_{split}{YEAR}.json"),
                  {"info": INFO, "licenses": [], **records[split],
                   "categories": coco_categories()})
    return result


def build_parser():
    p = script_parser(__doc__)
    p.add_argument("--root", default="demo_data",
                   help="the demo dataset (data/make_demo_dataset.py --root)")
    p.add_argument("--out", required=True, help="output folder (make_coco.py's --coco_root)")
    p.add_argument("--overwrite", action="store_true",
                   help="copy the images and saliency maps again even where they are there")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_output_folder(args.out, "--out")
    result = demo_to_coco(args.root, args.out, args.overwrite)
    kinds = result["kinds"]
    instances = sum(n for kind, n in kinds.items() if kind != "crowd")
    mismatches = result["label_mismatches"]
    print(f"demo_to_coco: {len(result['names'])} images ({', '.join(SPLITS)}) in {args.out}; "
          f"{instances} instances ({kinds['polygon']} polygons, {kinds['rle']} uncompressed "
          f"RLE, {kinds['compressed_rle']} compressed RLE), {kinds['crowd']} crowd regions "
          f"from the 255 band; {result['copied']} files copied"
          + ("" if result["saliency"] else "; no SAL/ folder, no saliency maps")
          + (f"; {len(mismatches)} images whose label PNG classes differ from cls_labels.npy "
             f"(first: {mismatches[0]})" if mismatches else ""))
    return result


if __name__ == "__main__":
    run_main(main)
