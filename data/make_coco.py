"""MS COCO 2014 in the folder layout every stage reads (VOC's), from the instances JSONs
and the image folders:

    <out>/JPEGImages/<name>.jpg          links to the original images (--copy_images: copies)
    <out>/SegmentationClass/<name>.png   ground-truth label PNGs (VOC palette)
    <out>/cls_labels.npy                 psa image labels {name: float32 (80,) multi-hot}
    <out>/train.txt, <out>/val.txt       image names (COCO_train2014_000000000009, ...)

Label PNGs: 0 background; 1..80 the classes in COCO category order (category ids 1..90
have gaps; tool/data/coco.py COCO_CATEGORIES maps them); 255 (ignored by training and by
eval_seg.py) where annotations of two or more classes overlap, and where only crowd
regions lie. Why: COCO outlines every instance on its own and does not record which of
two overlapping objects is in front, and a crowd region is a coarse outline of many
objects with background between them, so the true class of those pixels is unknown.
Crowd annotations count in the image labels, as any instance.

The lists hold the images with at least one annotation (COCO 2014: 82,081 of 82,783
train, 40,137 of 40,504 val, the counts of the usual WSSS lists); --keep_unlabelled
lists all (stages skip images without a labelled class and count them).
A rerun keeps finished PNGs and links (--overwrite redoes them).

    python data/make_coco.py --coco_root COCO2014 --out coco --workers 8

then run every stage with `--voc12_root coco` (or `--img_path coco/JPEGImages`) and
`coco/train.txt` / `coco/val.txt`."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python data/make_coco.py`

from tool.core.cli import (add_overwrite_arg, positive_int, progress, run_main,  # noqa: E402
                           script_parser)
from tool.core.io import (InputError, check_output_folder, link_file, output_done,  # noqa: E402
                          save_npy, save_text)
from tool.core.workers import map_with_workers  # noqa: E402
from tool.data.coco import (annotations_by_image, image_key, image_label,  # noqa: E402
                            read_instances_json, write_label_png)

YEAR = "2014"
IMAGE_DIR = "JPEGImages"
LABEL_DIR = "SegmentationClass"


def build_parser():
    p = script_parser(__doc__)
    p.add_argument("--coco_root", required=True,
                   help="COCO folder: annotations/instances_<split>2014.json and <split>2014/")
    p.add_argument("--splits", nargs="+", default=["train", "val"],
                   help="splits to prepare; each writes <out>/<split>.txt")
    p.add_argument("--out", required=True, help="output folder (the stages' --voc12_root)")
    p.add_argument("--keep_unlabelled", action="store_true",
                   help="also list the images without any annotation (all background)")
    p.add_argument("--copy_images", action="store_true",
                   help="copy the images into <out>/JPEGImages instead of linking them")
    p.add_argument("--workers", "--num_workers", dest="workers", type=positive_int, default=1,
                   help="processes decoding and writing label PNGs (1 = inline)")
    add_overwrite_arg(p, "redo PNGs and links already there")
    return p


def split_sources(coco_root, split):
    """(instances JSON, image folder) of one split under the COCO root."""
    json_path = os.path.join(coco_root, "annotations", f"instances_{split}{YEAR}.json")
    image_dir = os.path.join(coco_root, f"{split}{YEAR}")
    if not os.path.isdir(image_dir):
        raise InputError(f"{image_dir}: COCO image folder not found")
    return json_path, image_dir


def listed_images(data, by_image, keep_unlabelled):
    """The image records to list, sorted by name: all, or those with an annotation."""
    images = [img for img in data["images"] if keep_unlabelled or by_image[img["id"]]]
    return sorted(images, key=lambda img: image_key(img["file_name"]))


def prepare_split(args, split):
    """Links and label PNGs of the listed images of one split; returns (names listed,
    image labels of every image of the JSON, images left out, PNGs written)."""
    json_path, image_dir = split_sources(args.coco_root, split)
    data = read_instances_json(json_path)
    by_image = annotations_by_image(data, json_path)
    images = listed_images(data, by_image, args.keep_unlabelled)
    labels = {image_key(img["file_name"]): image_label(by_image[img["id"]], json_path)
              for img in data["images"]}
    names, jobs = [], []
    for img in images:
        name = image_key(img["file_name"])
        src = os.path.join(image_dir, img["file_name"])
        if not os.path.isfile(src):
            raise InputError(f"{src}: image of {json_path} not found")
        link = os.path.join(args.out, IMAGE_DIR, os.path.basename(img["file_name"]))
        if not output_done(link, args.overwrite):
            link_file(src, link, args.copy_images)
        png = os.path.join(args.out, LABEL_DIR, name + ".png")
        if not output_done(png, args.overwrite):
            jobs.append((src, img, by_image[img["id"]], png, json_path))
        names.append(name)
    written = 0
    for _ in progress(map_with_workers(write_label_png, jobs, args.workers),
                      f"make_coco {split}{YEAR}", total=len(jobs)):
        written += 1
    return names, labels, len(data["images"]) - len(images), written


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_output_folder(args.out, "--out")
    labels, counts = {}, {}
    for split in args.splits:
        names, split_labels, left_out, written = prepare_split(args, split)
        save_text(os.path.join(args.out, f"{split}.txt"), "".join(f"{n}\n" for n in names))
        labels.update(split_labels)
        counts[split] = {"listed": len(names), "left_out": left_out, "written": written}
    save_npy(os.path.join(args.out, "cls_labels.npy"), labels)
    reports = [f"{split}: {c['listed']} images listed ({c['left_out']} without annotations "
               f"left out), {c['written']} label PNGs written, "
               f"{c['listed'] - c['written']} already there" for split, c in counts.items()]
    print(f"make_coco: {'; '.join(reports)}; image labels of {len(labels)} images in "
          f"{os.path.join(args.out, 'cls_labels.npy')}")
    return counts


if __name__ == "__main__":
    run_main(main)
