"""Built-in demo dataset: a small synthetic look-alike of PASCAL VOC 2012 in the regime
weakly supervised segmentation is made for, made from a seed in seconds.

Six VOC classes are objects made of parts (data/scenes.py): a small HEAD whose shape,
texture and colour belong to its class alone (the discriminative part), a larger BODY whose
look comes from a pool shared by all classes (each class prefers one look, weakly), and
sometimes limbs in the body's look. Each class prefers a background scene (boats on water,
aeroplanes in the sky, ...), so context correlates with the class, as in VOC. 1-3 objects
of 1-3 classes per image; faint headless bodies lie in the background as distractors.
A classifier trained on image labels therefore finds heads first and the rest of the
object only weakly: its CAMs cover part of each object, as CAMs do on VOC.

Besides the JPEG images it writes what the real dataset provides (segmentation masks with
a 255 band on object boundaries, Annotations XML, list files, psa's cls_labels.npy) and,
in SAL/, the kind of saliency maps an off-the-shelf detector gives (blurred object masks
with missed parts, a weak false blob and noise).

    python data/make_demo_dataset.py --root demo_data --seed 0
"""
import functools
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python data/make_demo_dataset.py`

from data.scenes import (SCENES, Look, PartSpec, Pose, draw_parts, finish,  # noqa: E402
                         object_frame, paint_parts, scene_background, union_coverage)
from tool.core.cli import ArgumentParser, positive_int, run_main  # noqa: E402
from tool.core.io import (IGNORE_LABEL, atomic_path, check_output_folder,  # noqa: E402
                          save_gray_png, save_label_png, save_npy, save_rgb, save_text)
from tool.core.workers import map_with_workers  # noqa: E402
from tool.data.voc import VOC_CLASSES  # noqa: E402

NUM_TRAIN = 160
NUM_VAL = 40
MIN_SIZE, MAX_SIZE = 112, 144    # image side range (px)
MIN_SIDE = 72                    # the affinity net needs feature maps >= 9 wide (stride 8)
ID_YEAR = 2026                   # ids look like VOC's: 2026_000001


class DemoClass(NamedTuple):
    head_shape: str
    head: Look        # the discriminative part: unique to the class
    body: int         # index of the preferred look in BODY_LOOKS
    scene: str        # preferred background scene (context)


# Shared body looks: any class may wear any of them; each class prefers one.
BODY_TONE = {"saturation": (0.3, 0.6), "value": (0.45, 0.8)}   # duller than heads
HEAD_TONE = {"saturation": (0.8, 1.0), "value": (0.8, 1.0)}
BODY_LOOKS = tuple(Look(hue, texture, **BODY_TONE) for hue, texture in (  # textures no head
    (30.0, "plain"), (0.0, "spots"), (270.0, "spots"), (160.0, "hatch"),  # and no scene has
    (60.0, "gradient"), (330.0, "hatch"), (210.0, "plain"), (100.0, "gradient")))
BODY_SHAPES = ("disc", "rounded_box", "hexagon", "drop", "blob", "pentagon")
DEMO_CLASSES = {
    "aeroplane": DemoClass("triangle", Look(0.0, "stripes", **HEAD_TONE), 0, "sky"),
    "boat": DemoClass("diamond", Look(45.0, "checker", **HEAD_TONE), 1, "water"),
    "car": DemoClass("square", Look(200.0, "grid", **HEAD_TONE), 2, "road"),
    "cat": DemoClass("star", Look(300.0, "rings", **HEAD_TONE), 3, "indoor"),
    "cow": DemoClass("cross", Look(120.0, "zigzag", **HEAD_TONE), 4, "grass"),
    "person": DemoClass("disc", Look(20.0, "dots", **HEAD_TONE), 5, "sand"),
}
HEAD_LOOKS = tuple(c.head for c in DEMO_CLASSES.values())

BODY_PREFERENCE = 0.2       # P(body wears its class's look); else any look of the pool
CONTEXT_PREFERENCE = 0.15   # P(background is the preferred scene of one of the classes)
HEAD_SIZE = (0.6, 0.72)     # head radius / body radius
HEAD_DISTANCE = (0.95, 1.15)  # head centre from the body centre, in body radii
LIMB_COUNT_PROBS = (0.5, 0.3, 0.2)  # 0, 1, 2 limbs
LIMB_SIZE = (0.5, 0.75)
LIMB_DISTANCE = (0.85, 1.05)
BODY_ASPECT = (0.7, 1.4)
MIN_HEAD_VISIBLE = 0.6      # of the head's own area, after occlusion
HEADLESS_PROB = 0.0         # an object shows no head (turned away, hidden): body and limbs only

CLASS_COUNT_PROBS = (0.55, 0.33, 0.12)         # images with 1, 2, 3 classes
EXTRA_OBJECT_PROB = 0.3                        # one more object of an already chosen class
MAX_OBJECTS = 3
BODY_RADIUS = {1: (0.17, 0.25), 2: (0.14, 0.2), 3: (0.12, 0.17)}  # x the short side
MIN_VISIBLE_FRACTION = 0.45                    # of an object's own area, after occlusion
MIN_VISIBLE_PIXELS = 80
MAX_LAYOUT_TRIES = 200
DISTRACTORS = (1, 3)                           # faint headless bodies per image
DISTRACTOR_ALPHA = (0.2, 0.4)
DISTRACTOR_RADIUS = (0.07, 0.14)               # x the short side

SAL_STRENGTH = (0.75, 1.0)
SAL_MISS_PROB = 0.5                            # an object loses part of its saliency
SAL_MISS_KEEP = (0.15, 0.5)
SAL_FALSE_PEAK = (0.25, 0.5)
SAL_FALSE_SIGMA = (4.0, 10.0)
SAL_BLUR = (1.5, 3.0)
SAL_NOISE = 0.03                               # std of the smooth saliency noise
SAL_NOISE_SCALE = 4.0                          # its spatial scale (Gaussian sigma, px)


class Sample(NamedTuple):
    rgb: np.ndarray          # (H, W, 3) uint8
    label: np.ndarray        # (H, W) uint8: 0 background, c+1 VOC class c, 255 boundary band
    saliency: np.ndarray     # (H, W) uint8
    objects: list            # (class index, (xmin, ymin, xmax, ymax) 1-based, truncated)
    heads: np.ndarray        # (H, W) bool: visible head pixels (for analysis and tests)


def demo_id(index):
    return f"{ID_YEAR}_{index:06d}"


def demo_index(img_id):
    """The k of demo_id(k): which draw of the seed made the image."""
    return int(img_id.rsplit("_", 1)[1])


def class_index(name):
    return VOC_CLASSES.index(name)


def class_name(index):
    return VOC_CLASSES[index]


def sample_object_classes(rng):
    """VOC class indices of the objects of one image, in drawing order."""
    demo_classes = [class_index(name) for name in DEMO_CLASSES]
    num_classes = rng.choice(len(CLASS_COUNT_PROBS), p=CLASS_COUNT_PROBS) + 1
    classes = list(rng.choice(demo_classes, num_classes, replace=False))
    if len(classes) < MAX_OBJECTS and rng.random() < EXTRA_OBJECT_PROB:
        classes.append(rng.choice(classes))
    return [int(c) for c in rng.permutation(classes)]


def object_parts(cls, rng):
    """The parts of one object of class `cls`: body, limbs, head (drawn in this order)."""
    spec = DEMO_CLASSES[class_name(cls)]
    body_look = BODY_LOOKS[spec.body if rng.random() < BODY_PREFERENCE
                           else rng.integers(len(BODY_LOOKS))]
    parts = [PartSpec(str(rng.choice(BODY_SHAPES)), body_look, 1.0, 0.0, 0.0)]
    head_angle = rng.uniform(0, 2 * np.pi)
    limbs = rng.choice(len(LIMB_COUNT_PROBS), p=LIMB_COUNT_PROBS)
    for k in range(limbs):
        angle = head_angle + np.pi + (k - (limbs - 1) / 2) * rng.uniform(0.8, 1.4)
        parts.append(PartSpec("bar", body_look, rng.uniform(*LIMB_SIZE), angle,
                              rng.uniform(*LIMB_DISTANCE), aspect=1.0))
    head = PartSpec(spec.head_shape, spec.head, rng.uniform(*HEAD_SIZE), head_angle,
                    rng.uniform(*HEAD_DISTANCE))
    # no draw when objects are never headless: the demo's images stay as they were
    if HEADLESS_PROB == 0 or rng.random() >= HEADLESS_PROB:
        parts.append(head)
    return parts


def has_head(parts):
    """Whether an object's parts (object_parts) end with its class's head."""
    return parts[-1].look in HEAD_LOOKS


def random_body_pose(height, width, radius_range, rng):
    radius = min(height, width) * rng.uniform(*radius_range)
    margin = 0.8 * radius   # objects may be cut a little by the image border
    return Pose(rng.uniform(margin, width - margin), rng.uniform(margin, height - margin), radius,
                rng.uniform(*BODY_ASPECT), rng.uniform(0, 2 * np.pi))


def instance_map(objects):
    """0 background, k+1 where object k is on top (drawn later = in front)."""
    instance = np.zeros(objects[0].coverages[0].shape, np.int64)
    for k, drawn in enumerate(objects):
        instance[union_coverage(drawn.coverages) >= 0.5] = k + 1
    return instance


def visible_enough(instance, objects, heads):
    """Every object keeps enough visible pixels, and its head (heads[k]) enough of its own."""
    for k, drawn in enumerate(objects):
        own = union_coverage(drawn.coverages) >= 0.5
        visible = instance == k + 1
        if visible.sum() < MIN_VISIBLE_PIXELS or visible.sum() < MIN_VISIBLE_FRACTION * own.sum():
            return False
        head = drawn.coverages[-1] >= 0.5
        if heads[k] and (head & visible).sum() < MIN_HEAD_VISIBLE * head.sum():
            return False
    return True


def place_objects(classes, height, width, rng):
    """Random poses until every object (and its head) keeps enough visible area:
    (parts per object, drawn parts per object, instance map)."""
    radius_range = BODY_RADIUS[len(classes)]
    for _ in range(MAX_LAYOUT_TRIES):
        parts = [object_parts(c, rng) for c in classes]
        objects = [draw_parts(p, random_body_pose(height, width, radius_range, rng), height,
                              width, rng) for p in parts]
        instance = instance_map(objects)
        if visible_enough(instance, objects, [has_head(p) for p in parts]):
            return parts, objects, instance
    raise RuntimeError(f"no layout for {len(classes)} objects in {height}x{width} "
                       f"after {MAX_LAYOUT_TRIES} tries")


def scene_kind(classes, rng):
    """The preferred scene of one of the image's classes, or any scene."""
    if rng.random() < CONTEXT_PREFERENCE:
        return DEMO_CLASSES[class_name(int(rng.choice(classes)))].scene
    return str(rng.choice(SCENES))


def add_distractors(image, rng):
    """Faint headless bodies in body looks: object-like clutter that is background."""
    height, width = image.shape[:2]
    short = min(height, width)
    for _ in range(rng.integers(DISTRACTORS[0], DISTRACTORS[1] + 1)):
        pose = Pose(rng.uniform(0, width), rng.uniform(0, height),
                    short * rng.uniform(*DISTRACTOR_RADIUS), rng.uniform(*BODY_ASPECT),
                    rng.uniform(0, 2 * np.pi))
        parts = [PartSpec(str(rng.choice(BODY_SHAPES)),
                          BODY_LOOKS[rng.integers(len(BODY_LOOKS))], 1.0, 0.0, 0.0)]
        drawn = draw_parts(parts, pose, height, width, rng)
        faint = drawn._replace(coverages=[c * rng.uniform(*DISTRACTOR_ALPHA)
                                          for c in drawn.coverages])
        image = paint_parts(image, parts, faint, rng)
    return image


def segmentation_label(instance, classes):
    """VOC label map: c+1 on objects of class c, 0 background, 255 on instance boundaries."""
    label = np.array([0] + [c + 1 for c in classes], np.uint8)[instance]
    band = ndimage.maximum_filter(instance, 3) != ndimage.minimum_filter(instance, 3)
    label[band] = IGNORE_LABEL
    return label


def fake_saliency(instance, poses, rng):
    """What an off-the-shelf saliency detector might say: blurred object masks of uneven
    strength, part of some objects missed, a weak false blob on the background, noise."""
    height, width = instance.shape
    sal = np.zeros((height, width))
    for k, pose in enumerate(poses):
        part = (instance == k + 1) * rng.uniform(*SAL_STRENGTH)
        if rng.random() < SAL_MISS_PROB:
            u, _ = object_frame(height, width, pose._replace(angle=rng.uniform(0, 2 * np.pi)))
            part = np.where(u > rng.uniform(0.0, 0.6) * pose.radius,
                            part * rng.uniform(*SAL_MISS_KEEP), part)
        sal = np.maximum(sal, part)
    sal = ndimage.gaussian_filter(sal, rng.uniform(*SAL_BLUR))
    ys, xs = np.nonzero(instance == 0)
    pick = rng.integers(len(ys))
    y, x = np.mgrid[0:height, 0:width]
    sigma = rng.uniform(*SAL_FALSE_SIGMA)
    sal += rng.uniform(*SAL_FALSE_PEAK) * np.exp(-((y - ys[pick]) ** 2 + (x - xs[pick]) ** 2)
                                                 / (2 * sigma ** 2))
    smooth = ndimage.gaussian_filter(rng.standard_normal(sal.shape), SAL_NOISE_SCALE)
    sal += SAL_NOISE * smooth / smooth.std()  # detectors' errors come in soft patches, not pixels
    return np.round(255.0 * np.clip(sal, 0.0, 1.0)).astype(np.uint8)


def object_boxes(instance, classes):
    """Per object: (class, VOC bndbox of its visible pixels, 1-based inclusive, truncated)."""
    height, width = instance.shape
    objects = []
    for k, c in enumerate(classes):
        ys, xs = np.nonzero(instance == k + 1)
        box = (int(xs.min()) + 1, int(ys.min()) + 1, int(xs.max()) + 1, int(ys.max()) + 1)
        truncated = box[0] == 1 or box[1] == 1 or box[2] == width or box[3] == height
        objects.append((c, box, truncated))
    return objects


def visible_heads(instance, objects, heads):
    visible = np.zeros(instance.shape, bool)
    for k, drawn in enumerate(objects):
        if heads[k]:
            visible |= (drawn.coverages[-1] >= 0.5) & (instance == k + 1)
    return visible


def render_sample(rng, min_size=MIN_SIZE, max_size=MAX_SIZE):
    """One synthetic image with its label map, saliency map and objects."""
    height, width = (int(v) for v in rng.integers(min_size, max_size + 1, size=2))
    classes = sample_object_classes(rng)
    image = add_distractors(scene_background(scene_kind(classes, rng), height, width, rng), rng)
    parts, objects, instance = place_objects(classes, height, width, rng)
    for object_parts_, drawn in zip(parts, objects):
        image = paint_parts(image, object_parts_, drawn, rng)
    body_poses = [drawn.poses[0]._replace(radius=1.4 * drawn.poses[0].radius) for drawn in objects]
    return Sample(finish(image, rng), segmentation_label(instance, classes),
                  fake_saliency(instance, body_poses, rng), object_boxes(instance, classes),
                  visible_heads(instance, objects, [has_head(p) for p in parts]))


def annotation_xml(img_id, sample):
    """A VOC Annotations tree: filename, size, one <object> per object."""
    height, width = sample.label.shape
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2012"
    ET.SubElement(root, "filename").text = f"{img_id}.jpg"
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "wsss demo (synthetic)"
    size = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "1"
    for c, box, truncated in sample.objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = VOC_CLASSES[c]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = str(int(truncated))
        ET.SubElement(obj, "difficult").text = "0"
        bndbox = ET.SubElement(obj, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ET.SubElement(bndbox, tag).text = str(value)
    ET.indent(root, space="\t")
    return ET.ElementTree(root)


def multi_hot(classes):
    label = np.zeros(len(VOC_CLASSES), np.float32)
    label[list(classes)] = 1.0
    return label


def write_sample(root, img_id, sample):
    save_rgb(root / "JPEGImages" / f"{img_id}.jpg", sample.rgb)
    save_label_png(root / "SegmentationClass" / f"{img_id}.png", sample.label)
    save_label_png(root / "SegmentationClassAug" / f"{img_id}.png", sample.label)
    save_gray_png(root / "SAL" / f"{img_id}.png", sample.saliency)
    with atomic_path(root / "Annotations" / f"{img_id}.xml") as tmp:
        annotation_xml(img_id, sample).write(tmp)


def make_one(k, root, seed, min_size, max_size):
    """Render and write image k (1-based); returns its classes. Module-level so a process
    pool can run it."""
    sample = render_sample(np.random.default_rng([seed, k]), min_size, max_size)
    write_sample(Path(root), demo_id(k), sample)
    return sorted({c for c, _, _ in sample.objects})


def readme_text(seed, num_train, num_val):
    classes = "\n".join(f"  {name:<10} head {c.head_shape} ({c.head.texture}, hue ~{c.head.hue:.0f}"
                        f" deg), prefers body look {c.body} and the {c.scene} scene"
                        for name, c in DEMO_CLASSES.items())
    return f"""Synthetic demo dataset in the PASCAL VOC 2012 layout (NOT real VOC data).
Made by data/make_demo_dataset.py with --seed {seed}: {num_train} train, {num_val} val images;
the same seed gives the same bytes. Its numbers say nothing about the published results.

Objects are made of parts: a small class-specific head, a larger body in one of
{len(BODY_LOOKS)} looks shared by all classes (preferred by its class with p {BODY_PREFERENCE}
before the uniform draw), sometimes limbs; the background is the class's preferred scene
with p {CONTEXT_PREFERENCE}. Classes used (VOC name):
{classes}

JPEGImages/<id>.jpg          RGB, JPEG quality 95
SegmentationClass/<id>.png   palette PNG: 0 background, c+1 VOC class c, 255 object boundaries
SegmentationClassAug/<id>.png  the same masks (the train_aug label folder)
Annotations/<id>.xml         VOC XML, one <object> per object (bndbox of its visible part)
SAL/<id>.png                 8-bit saliency, imitating an off-the-shelf detector (imperfect)
train.txt val.txt train_aug.txt  bare ids (train_aug = train)
cls_labels.npy               psa format: pickled dict id -> float32 (20,) multi-hot
"""


def make_demo_dataset(root, seed=0, num_train=NUM_TRAIN, num_val=NUM_VAL,
                      min_size=MIN_SIZE, max_size=MAX_SIZE, workers=1):
    """Write the demo dataset under `root`; returns {"train": ids, "val": ids}. Image k depends
    only on (seed, k), so changing the counts or `workers` keeps the other images as they were."""
    if num_train < 1 or num_val < 1:
        raise ValueError(f"need at least one train and one val image, got {num_train} and {num_val}")
    if not MIN_SIDE <= min_size <= max_size:
        raise ValueError(f"image sizes must satisfy {MIN_SIDE} <= min_size <= max_size, "
                         f"got {min_size}, {max_size}")
    root = Path(root)
    indices = range(1, num_train + num_val + 1)
    ids = [demo_id(k) for k in indices]
    render = functools.partial(make_one, root=str(root), seed=seed, min_size=min_size,
                               max_size=max_size)
    classes = list(map_with_workers(render, indices, workers))
    splits = {"train": ids[:num_train], "val": ids[num_train:]}
    for name, split_ids in (("train", splits["train"]), ("val", splits["val"]),
                            ("train_aug", splits["train"])):
        save_text(root / f"{name}.txt", "".join(f"{i}\n" for i in split_ids))
    save_npy(root / "cls_labels.npy", {i: multi_hot(c) for i, c in zip(ids, classes)})
    save_text(root / "README.txt", readme_text(seed, num_train, num_val))
    return splits


def build_parser():
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="demo_data", help="output folder (VOC layout)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--num_train", type=positive_int, default=NUM_TRAIN,
                        help="training images (train.txt = train_aug.txt)")
    parser.add_argument("--num_val", type=positive_int, default=NUM_VAL, help="validation images (val.txt)")
    parser.add_argument("--min_size", type=int, default=MIN_SIZE, help=f"smallest image side, >= {MIN_SIDE}")
    parser.add_argument("--max_size", type=int, default=MAX_SIZE, help="largest image side")
    parser.add_argument("--workers", type=positive_int, default=1,
                        help="processes drawing images (the bytes do not depend on it)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not MIN_SIDE <= args.min_size <= args.max_size:
        parser.error(f"need {MIN_SIDE} <= --min_size <= --max_size")
    check_output_folder(args.root, "--root")
    start = time.perf_counter()
    splits = make_demo_dataset(args.root, args.seed, args.num_train, args.num_val, args.min_size,
                               args.max_size, args.workers)
    print(f"demo dataset: {len(splits['train'])} train + {len(splits['val'])} val images in {args.root} "
          f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    run_main(main)
