"""Image-level labels in psa's `cls_labels.npy` format (pickled dict image id -> float32
multi-hot): for VOC from the Annotations XML of every id in the lists (every object,
`difficult` ones included, as psa's voc12/make_cls_labels.py), for COCO from instances JSONs.

    python data/make_cls_labels.py --voc12_root VOC2012 --train_list train_aug.txt \
        --val_list val.txt --out cls_labels.npy
    python data/make_cls_labels.py --coco_instances instances_train2014.json \
        instances_val2014.json --out cls_labels_coco.npy
"""
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python data/make_cls_labels.py`

from tool.core.cli import ArgumentParser, progress, run_main  # noqa: E402
from tool.core.io import InputError, check_output_file, save_npy  # noqa: E402
from tool.data.coco import image_labels_from_instances  # noqa: E402
from tool.data.voc import NUM_CLASSES, VOC_CLASSES, read_image_list, voc_dirs  # noqa: E402

CLASS_INDEX = {name: index for index, name in enumerate(VOC_CLASSES)}


def object_names(xml_path):
    """The `name` of every `object` of a VOC annotation (person-layout `part` names are
    not objects and are left out)."""
    if not os.path.isfile(xml_path):
        raise InputError(f"{xml_path}: annotation XML not found")
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        raise InputError(f"{xml_path}: unreadable annotation XML ({exc})") from None
    return [(obj.findtext("name") or "").strip() for obj in root.iter("object")]


def image_label_from_xml(xml_path):
    """float32 (20,) multi-hot of the classes named in one annotation XML."""
    label = np.zeros(NUM_CLASSES, np.float32)
    for name in object_names(xml_path):
        if name not in CLASS_INDEX:
            raise InputError(f"{xml_path}: unknown VOC class name {name!r}")
        label[CLASS_INDEX[name]] = 1.0
    return label


def voc_cls_labels(ids, annotations_dir):
    """{id: multi-hot} from `<annotations_dir>/<id>.xml` for every id."""
    return {img_id: image_label_from_xml(os.path.join(annotations_dir, img_id + ".xml"))
            for img_id in progress(ids, "cls labels")}


def coco_cls_labels(json_paths):
    """{file-name stem: float32 (80,) multi-hot} merged over the instances JSONs."""
    labels = {}
    for path in json_paths:
        labels.update(image_labels_from_instances(path))
    return labels


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--voc12_root", help="VOC2012 devkit folder (reads Annotations/)")
    source.add_argument("--coco_instances", nargs="+",
                        help="COCO instances JSON(s), e.g. instances_train2014.json "
                             "instances_val2014.json")
    parser.add_argument("--train_list", default="train_aug.txt",
                        help="VOC list file (psa make_cls_labels default: train_aug.txt)")
    parser.add_argument("--val_list", default="val.txt",
                        help="second VOC list file (psa make_cls_labels default: val.txt)")
    parser.add_argument("--out", default="cls_labels.npy", help="output (psa default: cls_labels.npy)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    check_output_file(args.out, "--out")
    if args.coco_instances:
        labels = coco_cls_labels(args.coco_instances)
    else:
        annotations = voc_dirs(args.voc12_root)["annotations"]
        if annotations is None:
            raise InputError(f"{os.path.join(args.voc12_root, 'Annotations')}: annotation "
                             "folder not found")
        ids = read_image_list(args.train_list) + read_image_list(args.val_list)
        labels = voc_cls_labels(list(dict.fromkeys(ids)), annotations)
    save_npy(args.out, labels)
    print(f"wrote {args.out}: image labels of {len(labels)} images")


if __name__ == "__main__":
    run_main(main)
