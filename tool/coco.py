"""MS COCO 2014 for weakly supervised segmentation: the 80 classes (COCO category ids
1..90 with gaps, mapped to contiguous indices 0..79), image-level labels from an
instances JSON, and ground-truth label maps (0 background, 1..80 classes, 255 crowd).

Images are keyed by their file-name stem (`COCO_train2014_000000000009`), the name
that list files, `find_image` and the per-image output files use."""
import contextlib
import io
import os

import numpy as np

from tool.io import IGNORE_LABEL, InputError, load_json

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


def image_labels_from_instances(json_path):
    """{file-name stem: float32 (80,) multi-hot} for every image of the JSON (images
    without annotations get all zeros; crowd annotations count, as any instance)."""
    data = read_instances_json(json_path)
    key_of = {img["id"]: image_key(img["file_name"]) for img in data["images"]}
    labels = {key: np.zeros(NUM_COCO_CLASSES, np.float32) for key in key_of.values()}
    for ann in data["annotations"]:
        if ann["image_id"] not in key_of:
            raise InputError(f"{json_path}: annotation {ann.get('id')} refers to unknown "
                             f"image id {ann['image_id']}")
        labels[key_of[ann["image_id"]]][class_index(ann["category_id"], json_path)] = 1.0
    return labels


def load_coco(json_path):
    """A pycocotools COCO index of the instances JSON (its progress prints silenced)."""
    from pycocotools.coco import COCO

    read_instances_json(json_path)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(json_path)
    coco.json_path = json_path
    return coco


def render_label_png(coco, img_id):
    """(H, W) uint8 ground-truth label map of one image (integer COCO image id):
    instances drawn from the largest to the smallest, so a smaller object lying on a
    larger one stays visible; crowd regions become 255 where no instance covers them."""
    source = getattr(coco, "json_path", "COCO instances")
    info = coco.imgs[img_id]
    label = np.zeros((info["height"], info["width"]), np.uint8)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id], iscrowd=None))
    masks = [(coco.annToMask(ann).astype(bool), ann) for ann in anns]
    crowd = np.zeros(label.shape, bool)
    for mask, ann in sorted(masks, key=lambda m: -int(m[0].sum())):
        if ann.get("iscrowd", 0):
            crowd |= mask
        else:
            label[mask] = class_index(ann["category_id"], source) + 1
    label[crowd & (label == 0)] = IGNORE_LABEL
    return label
