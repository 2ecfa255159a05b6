"""MS COCO 2014 for weakly supervised segmentation: the 80 classes (COCO category ids
1..90 with gaps, mapped to contiguous indices 0..79), image-level labels from an
instances JSON, and ground-truth label maps (0 background, 1..80 classes, 255 ignored:
see `label_map` for the rule).

Images are keyed by their file-name stem (`COCO_train2014_000000000009`), the name
that list files, `find_image` and the per-image output files use."""
import os

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from tool.core.io import IGNORE_LABEL, InputError, load_json, save_label_png

COCO_CATEGORIES = (
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"),
    (6, "bus"), (7, "train"), (8, "truck"), (9, "boat"), (10, "traffic light"),
    (11, "fire hydrant"), (13, "stop sign"), (14, "parking meter"), (15, "bench"),
    (16, "bird"), (17, "cat"), (18, "dog"), (19, "horse"), (20, "sheep"), (21, "cow"),
    (22, "elephant"), (23, "bear"), (24, "zebra"), (25, "giraffe"), (27, "backpack"),
    (28, "umbrella"), (31, "handbag"), (32, "tie"), (33, "suitcase"), (34, "frisbee"),
    (35, "skis"), (36, "snowboard"), (37, "sports ball"), (38, "kite"),
    (39, "baseball bat"), (40, "baseball glove"), (41, "skateboard"), (42, "surfboard"),
    (43, "tennis racket"), (44, "bottle"), (46, "wine glass"), (47, "cup"), (48, "fork"),
    (49, "knife"), (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"),
    (54, "sandwich"), (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"),
    (59, "pizza"), (60, "donut"), (61, "cake"), (62, "chair"), (63, "couch"),
    (64, "potted plant"), (65, "bed"), (67, "dining table"), (70, "toilet"), (72, "tv"),
    (73, "laptop"), (74, "mouse"), (75, "remote"), (76, "keyboard"), (77, "cell phone"),
    (78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"), (82, "refrigerator"),
    (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"), (88, "teddy bear"),
    (89, "hair drier"), (90, "toothbrush"),
)
COCO_CLASSES = tuple(name for _, name in COCO_CATEGORIES)
NUM_COCO_CLASSES = len(COCO_CLASSES)
CATEGORY_TO_INDEX = {cat_id: index for index, (cat_id, _) in enumerate(COCO_CATEGORIES)}


def class_index(category_id, json_path):
    """Contiguous class index 0..79 of a COCO category id."""
    if category_id not in CATEGORY_TO_INDEX:
        raise InputError(f"{json_path}: unknown COCO category id {category_id}")
    return CATEGORY_TO_INDEX[category_id]


def image_key(file_name):
    return os.path.splitext(os.path.basename(file_name))[0]


def read_instances_json(json_path):
    """The parsed instances JSON, checked for its `images` and `annotations` lists."""
    data = load_json(json_path, "COCO instances JSON")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations")):
        raise InputError(f"{json_path}: not a COCO instances file (needs 'images' and "
                         "'annotations' lists)")
    return data


def annotations_by_image(data, json_path):
    """{COCO image id: [its annotations]} over every image of a parsed instances JSON
    (images without annotations get an empty list)."""
    by_image = {img["id"]: [] for img in data["images"]}
    for ann in data["annotations"]:
        if ann["image_id"] not in by_image:
            raise InputError(f"{json_path}: annotation {ann.get('id')} refers to unknown "
                             f"image id {ann['image_id']}")
        by_image[ann["image_id"]].append(ann)
    return by_image


def image_label(annotations, json_path):
    """float32 (80,) multi-hot of the classes of an image's annotations (crowd
    annotations count, as any instance)."""
    label = np.zeros(NUM_COCO_CLASSES, np.float32)
    for ann in annotations:
        label[class_index(ann["category_id"], json_path)] = 1.0
    return label


def image_labels_from_instances(json_path):
    """{file-name stem: float32 (80,) multi-hot} for every image of the JSON (images
    without annotations get all zeros)."""
    data = read_instances_json(json_path)
    by_image = annotations_by_image(data, json_path)
    return {image_key(img["file_name"]): image_label(by_image[img["id"]], json_path)
            for img in data["images"]}


def annotation_rle(segmentation, height, width, source):
    """One annotation's `segmentation` as a pycocotools RLE, converted as COCO.annToRLE
    does: polygons (lists of x, y, ...) are merged, uncompressed RLE (`counts` a list of
    run lengths) is compressed, compressed RLE (`counts` a string) is used as it is."""
    if isinstance(segmentation, list):
        if not segmentation:  # no polygon: an empty mask
            return mask_utils.encode(np.zeros((height, width), np.uint8, order="F"))
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if not (isinstance(segmentation, dict) and "counts" in segmentation):
        raise InputError(f"{source}: segmentation is neither polygons nor RLE")
    if list(segmentation.get("size", ())) != [height, width]:
        raise InputError(f"{source}: RLE of size {segmentation.get('size')} on a "
                         f"{height}x{width} image")
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


def annotation_mask(segmentation, height, width, source):
    """(H, W) bool mask of one annotation's `segmentation` (as COCO.annToMask)."""
    return mask_utils.decode(annotation_rle(segmentation, height, width, source)).astype(bool)


def rle_box(rle):
    """The (rows, cols) slices of an RLE's bounding box."""
    x, y, w, h = mask_utils.toBbox(rle)
    return (slice(int(y), int(np.ceil(y + h))), slice(int(x), int(np.ceil(x + w))))


def label_map(annotations, height, width, source):
    """(H, W) uint8 ground truth of one image from its annotations: 0 where no annotation
    lies; class index + 1 (1..80, COCO category order) where the covering annotations all
    have one class and at least one of them is an individual (non-crowd) instance;
    255 (ignored) where annotations of two or more classes overlap or only crowd regions
    lie. COCO outlines every instance separately and does not record which of two
    overlapping objects is in front, and a crowd region is a coarse outline of many
    objects with background between them, so neither answer is known there."""
    first = np.zeros((height, width), np.uint8)  # the first class (1..80) seen per pixel
    mixed = np.zeros((height, width), bool)  # a second, different class seen
    instance = np.zeros((height, width), bool)  # under a non-crowd instance
    for ann in annotations:
        rle = annotation_rle(ann["segmentation"], height, width,
                             f"{source} (annotation {ann.get('id')})")
        value = class_index(ann["category_id"], source) + 1
        box = rle_box(rle)  # work inside the bounding box only
        mask = mask_utils.decode(rle)[box].astype(bool)
        seen = first[box]  # a view: writing it writes `first`
        mixed[box] |= mask & (seen != 0) & (seen != value)
        seen[mask & (seen == 0)] = value
        if not ann.get("iscrowd", 0):
            instance[box] |= mask
    label = np.where(instance, first, 0).astype(np.uint8)
    label[(first != 0) & (mixed | ~instance)] = IGNORE_LABEL
    return label


def write_label_png(job):
    """One image's ground-truth PNG; job = (image path, image record of the JSON, its
    annotations, output PNG path, JSON path). The image must have the JSON's size.
    Module-level so that a process pool can run it; returns the PNG path."""
    image_path, info, annotations, png_path, json_path = job
    try:
        with Image.open(image_path) as img:
            width, height = img.size
    except OSError as exc:
        raise InputError(f"{image_path}: unreadable image ({exc})") from None
    if (height, width) != (info["height"], info["width"]):
        raise InputError(f"{image_path}: image is {height}x{width} but {json_path} says "
                         f"{info['height']}x{info['width']}")
    save_label_png(png_path, label_map(annotations, height, width, json_path))
    return png_path
