"""A tiny MS COCO 2014 layout for the tests: `<root>/annotations/instances_<split>2014.json`
and `<root>/<split>2014/COCO_<split>2014_<id>.jpg`, with non-contiguous category ids,
polygon, uncompressed-RLE and compressed-RLE segmentations, a crowd region, two classes
overlapping and images without any annotation; plus saliency maps `<sal_dir>/<name>.png`
(the blurred object masks) for the AuxSegNet stages."""
import json

import numpy as np
from PIL import Image, ImageFilter

from tool.data.coco_annotations import compressed_rle, uncompressed_rle

PERSON, STOP_SIGN, DOG, GIRAFFE, TOOTHBRUSH = 1, 13, 18, 25, 90  # COCO category ids
CATEGORIES = {PERSON: "person", STOP_SIGN: "stop sign", DOG: "dog", GIRAFFE: "giraffe",
              TOOTHBRUSH: "toothbrush"}
COLOURS = {PERSON: (220, 40, 40), STOP_SIGN: (40, 200, 40), DOG: (40, 40, 220),
           GIRAFFE: (220, 220, 40), TOOTHBRUSH: (200, 40, 220)}
HEIGHT, WIDTH = 72, 96


def box_polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def box_mask(x0, y0, x1, y1, height=HEIGHT, width=WIDTH):
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


# (category, segmentation kind, box (x0, y0, x1, y1), crowd) per image; [] = no annotation
TRAIN_OBJECTS = [
    [(PERSON, "polygon", (8, 8, 48, 64), 0), (TOOTHBRUSH, "rle", (56, 20, 88, 52), 0)],
    [(DOG, "polygon", (10, 10, 60, 60), 0), (GIRAFFE, "polygon", (40, 30, 90, 70), 0)],
    [(STOP_SIGN, "compressed", (20, 12, 76, 60), 0)],
    [],
    [(PERSON, "polygon", (50, 10, 90, 60), 0), (PERSON, "rle", (0, 40, 40, 72), 1)],
    [(GIRAFFE, "compressed", (12, 6, 84, 66), 0)],
    [(TOOTHBRUSH, "polygon", (30, 20, 70, 50), 0), (DOG, "rle", (4, 4, 28, 40), 0)],
]
VAL_OBJECTS = [
    [(DOG, "polygon", (16, 8, 70, 60), 0)],
    [(TOOTHBRUSH, "compressed", (40, 10, 90, 64), 0), (PERSON, "polygon", (4, 20, 44, 70), 0)],
    [],
]


def segmentation(kind, box):
    if kind == "polygon":
        return box_polygon(*box)
    mask = box_mask(*box)
    return uncompressed_rle(mask) if kind == "rle" else compressed_rle(mask)


def draw_image(objects, rng):
    """Noise background with each object a filled box of its class colour, and the
    union of the object masks (for the saliency map)."""
    rgb = rng.integers(60, 120, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    objects_mask = np.zeros((HEIGHT, WIDTH), bool)
    for category, _, (x0, y0, x1, y1), _ in objects:
        rgb[y0:y1, x0:x1] = COLOURS[category]
        objects_mask[y0:y1, x0:x1] = True
    return rgb, objects_mask


def make_split(root, split, objects_per_image, sal_dir, first_id, rng):
    images, annotations = [], []
    image_dir = root / f"{split}2014"
    image_dir.mkdir(parents=True, exist_ok=True)
    for offset, objects in enumerate(objects_per_image):
        image_id = first_id + offset
        name = f"COCO_{split}2014_{image_id:012d}"
        rgb, objects_mask = draw_image(objects, rng)
        Image.fromarray(rgb).save(image_dir / f"{name}.jpg", quality=95)
        sal = Image.fromarray((objects_mask * 255).astype(np.uint8))
        sal.filter(ImageFilter.GaussianBlur(2)).save(sal_dir / f"{name}.png")
        images.append({"id": image_id, "file_name": f"{name}.jpg", "height": HEIGHT,
                       "width": WIDTH})
        for category, kind, box, crowd in objects:
            x0, y0, x1, y1 = box
            annotations.append({"id": 1000 + len(annotations) + first_id, "image_id": image_id,
                                "category_id": category, "iscrowd": crowd,
                                "segmentation": segmentation(kind, box),
                                "area": (x1 - x0) * (y1 - y0), "bbox": [x0, y0, x1 - x0, y1 - y0]})
    categories = [{"id": i, "name": n, "supercategory": "thing"} for i, n in CATEGORIES.items()]
    (root / "annotations").mkdir(exist_ok=True)
    with open(root / "annotations" / f"instances_{split}2014.json", "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)


def make_coco_layout(root, sal_dir, seed=0):
    """The tiny COCO folder under `root` and saliency maps in `sal_dir`."""
    rng = np.random.default_rng(seed)
    sal_dir.mkdir(parents=True, exist_ok=True)
    make_split(root, "train", TRAIN_OBJECTS, sal_dir, 1, rng)
    make_split(root, "val", VAL_OBJECTS, sal_dir, 500, rng)
    return root
