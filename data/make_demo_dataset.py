"""Built-in demo dataset: a small synthetic look-alike of PASCAL VOC 2012, made from a seed
in a few seconds, so that the whole pipeline can run (and learn) on a CPU without downloads.

Six VOC classes each get a distinctive shape and colour/texture family; 1-3 objects per
image (up to 3 classes, sometimes occluding each other) lie on cluttered textured
backgrounds with faint distractor shapes. Besides the JPEG images it writes what the real
dataset provides (segmentation masks with a 255 band on object boundaries, Annotations XML,
list files, psa's cls_labels.npy) and, in SAL/, the kind of saliency maps an off-the-shelf
detector gives (blurred object masks with missed parts, a weak false blob and noise).

    python data/make_demo_dataset.py --root demo_data --seed 0
"""
import colorsys
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python data/make_demo_dataset.py`

from tool.core.cli import ArgumentParser, positive_int, run_main  # noqa: E402
from tool.core.io import (IGNORE_LABEL, atomic_path, check_output_folder,  # noqa: E402
                          save_gray_png, save_label_png, save_npy, save_rgb, save_text)
from tool.data.voc import VOC_CLASSES  # noqa: E402

NUM_TRAIN = 160
NUM_VAL = 40
MIN_SIZE, MAX_SIZE = 96, 160     # image side range (px)
MIN_SIDE = 72                    # the affinity net needs feature maps >= 9 wide (stride 8)
ID_YEAR = 2026                   # ids look like VOC's: 2026_000001


class Style(NamedTuple):
    shape: str
    hue: float      # degrees
    texture: str


CLASS_STYLES = {
    "aeroplane": Style("triangle", 185.0, "stripes"),
    "bird": Style("star", 55.0, "spots"),
    "car": Style("rounded_box", 0.0, "checker"),
    "cat": Style("disc", 300.0, "rings"),
    "person": Style("cross", 120.0, "gradient"),
    "tvmonitor": Style("ring", 235.0, "grid"),
}
DISTRACTOR_SHAPES = ("hexagon", "crescent", "bar")

CLASS_COUNT_PROBS = (0.5, 0.38, 0.12)          # images with 1, 2, 3 classes
EXTRA_OBJECT_PROB = 0.3                        # one more object of an already chosen class
MAX_OBJECTS = 3
OBJECT_RADIUS = {1: (0.22, 0.36), 2: (0.17, 0.28), 3: (0.14, 0.24)}  # x the short side
ASPECT_RANGE = (0.7, 1.4)
HUE_JITTER = 15.0                              # degrees
TEXTURE_PERIOD = (5.0, 9.0)                    # px
MIN_VISIBLE_FRACTION = 0.45                    # of an object's own area, after occlusion
MIN_VISIBLE_PIXELS = 80
MAX_LAYOUT_TRIES = 200
SUPERSAMPLE = 4                                # anti-aliased shape edges
CIRCLE_POINTS = 48
PIXEL_NOISE = 5.0                              # grey levels

SAL_STRENGTH = (0.75, 1.0)
SAL_MISS_PROB = 0.5                            # an object loses part of its saliency
SAL_MISS_KEEP = (0.15, 0.5)
SAL_FALSE_PEAK = (0.25, 0.5)
SAL_FALSE_SIGMA = (4.0, 10.0)
SAL_BLUR = (1.5, 3.0)
SAL_NOISE = 0.03                               # std of the smooth saliency noise
SAL_NOISE_SCALE = 4.0                          # its spatial scale (Gaussian sigma, px)


def _unit_shapes():
    """Outlines of radius about 1 around 0: [outer] or [outer, cut-out]."""
    t = np.linspace(0.0, 2 * np.pi, CIRCLE_POINTS, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    star_angles = -np.pi / 2 + np.arange(10) * np.pi / 5
    star = np.tile([1.0, 0.45], 5)[:, None] * np.stack([np.cos(star_angles), np.sin(star_angles)], 1)
    a = 0.34
    cross = np.array([[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a],
                      [a, 1], [-a, 1], [-a, a], [-1, a], [-1, -a], [-a, -a]])
    c, s = np.cos(t), np.sin(t)
    squircle = np.stack([np.sign(c) * np.abs(c) ** (1 / 3), 0.7 * np.sign(s) * np.abs(s) ** (1 / 3)], 1)
    hexagon = circle[:: CIRCLE_POINTS // 6]
    return {
        "disc": [circle], "ring": [circle, 0.5 * circle],
        "triangle": [np.array([[0.0, -1.0], [0.95, 0.8], [-0.95, 0.8]])],
        "star": [star], "cross": [cross], "rounded_box": [squircle],
        "hexagon": [hexagon], "crescent": [circle, 0.85 * circle + [0.45, 0.0]],
        "bar": [np.array([[-1.0, -0.12], [1.0, -0.12], [1.0, 0.12], [-1.0, 0.12]])],
    }


UNIT_SHAPES = _unit_shapes()


class Pose(NamedTuple):
    cx: float
    cy: float
    radius: float
    aspect: float
    angle: float


class Sample(NamedTuple):
    rgb: np.ndarray          # (H, W, 3) uint8
    label: np.ndarray        # (H, W) uint8: 0 background, c+1 VOC class c, 255 boundary band
    saliency: np.ndarray     # (H, W) uint8
    objects: list            # (class index, (xmin, ymin, xmax, ymax) 1-based, truncated)


def demo_id(index):
    return f"{ID_YEAR}_{index:06d}"


def hsv_colour(hue, saturation, value):
    """RGB in 0..255 (float) from a hue in degrees."""
    return 255.0 * np.array(colorsys.hsv_to_rgb((hue % 360.0) / 360.0, saturation, value))


def posed_outlines(shape, pose):
    """The unit outlines of `shape` scaled, stretched, rotated and moved to `pose` (x, y px)."""
    scale = np.array([pose.radius * np.sqrt(pose.aspect), pose.radius / np.sqrt(pose.aspect)])
    c, s = np.cos(pose.angle), np.sin(pose.angle)
    rotation = np.array([[c, s], [-s, c]])
    return [(outline * scale) @ rotation + [pose.cx, pose.cy] for outline in UNIT_SHAPES[shape]]


def coverage(outlines, height, width):
    """Fraction of each pixel inside the shape (first outline filled, later ones cut out)."""
    canvas = Image.new("L", (width * SUPERSAMPLE, height * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    for i, outline in enumerate(outlines):
        draw.polygon([tuple(p) for p in outline * SUPERSAMPLE], fill=255 if i == 0 else 0)
    return np.asarray(canvas.reduce(SUPERSAMPLE), np.float32) / 255.0


def object_frame(height, width, pose):
    """Pixel-centre coordinates (u, v) in the object's rotated frame."""
    y, x = np.mgrid[0:height, 0:width] + 0.5
    dx, dy = x - pose.cx, y - pose.cy
    c, s = np.cos(pose.angle), np.sin(pose.angle)
    return dx * c + dy * s, -dx * s + dy * c


def texture_pattern(kind, u, v, radius, rng):
    """A pattern in [0, 1] that mixes an object's two tones."""
    period = rng.uniform(*TEXTURE_PERIOD)
    if kind == "stripes":
        return 0.5 + 0.5 * np.sin(2 * np.pi * u / period)
    if kind == "checker":
        return (np.floor(u / period) + np.floor(v / period)) % 2
    if kind == "rings":
        return 0.5 + 0.5 * np.cos(2 * np.pi * np.hypot(u, v) / period)
    if kind == "grid":
        return ((np.mod(u, period) < 1.5) | (np.mod(v, period) < 1.5)).astype(np.float64)
    if kind == "gradient":
        return np.clip(0.5 + 0.5 * v / radius, 0.0, 1.0)
    if kind == "spots":
        noise = ndimage.gaussian_filter(rng.standard_normal(u.shape), 1.2)
        return (noise > noise.std()).astype(np.float64)
    raise ValueError(f"unknown texture {kind!r}")


def object_colours(style, pose, height, width, rng):
    """(H, W, 3) colours of an object of `style`: two tones of its hue family mixed by its texture."""
    hue = style.hue + rng.uniform(-HUE_JITTER, HUE_JITTER)
    saturation, value = rng.uniform(0.55, 0.9), rng.uniform(0.65, 0.95)
    light = hsv_colour(hue, saturation, value)
    dark = hsv_colour(hue + rng.uniform(-10, 10), 0.7 * saturation, 0.5 * value)
    u, v = object_frame(height, width, pose)
    mix = texture_pattern(style.texture, u, v, pose.radius, rng)[..., None]
    return light * (1 - mix) + dark * mix


def blend(image, colours, alpha):
    return image * (1 - alpha[..., None]) + colours * alpha[..., None]


def background(height, width, rng):
    """Clutter: a desaturated base colour, smooth blotches, faint stripes, faint distractor shapes."""
    image = np.tile(hsv_colour(rng.uniform(0, 360), rng.uniform(0.05, 0.35), rng.uniform(0.35, 0.75)),
                    (height, width, 1))
    blotches = ndimage.gaussian_filter(rng.standard_normal((height, width, 3)), (6, 6, 0))
    image += 18.0 * blotches / blotches.std()
    u, _ = object_frame(height, width, Pose(0.0, 0.0, 1.0, 1.0, rng.uniform(0, np.pi)))
    stripes = np.sin(2 * np.pi * u / rng.uniform(4, 16))
    image += rng.uniform(8, 30) * stripes[..., None] * hsv_colour(rng.uniform(0, 360), 0.5, 1.0) / 255.0
    short = min(height, width)
    for _ in range(rng.integers(1, 5)):
        pose = Pose(rng.uniform(0, width), rng.uniform(0, height), short * rng.uniform(0.06, 0.18),
                    rng.uniform(*ASPECT_RANGE), rng.uniform(0, 2 * np.pi))
        alpha = rng.uniform(0.25, 0.5) * coverage(posed_outlines(rng.choice(DISTRACTOR_SHAPES), pose),
                                                  height, width)
        colour = hsv_colour(rng.uniform(0, 360), rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.9))
        image = blend(image, colour, alpha)
    return image


def sample_object_classes(rng):
    """VOC class indices of the objects of one image, in drawing order."""
    demo_classes = [VOC_CLASSES.index(name) for name in CLASS_STYLES]
    num_classes = rng.choice(len(CLASS_COUNT_PROBS), p=CLASS_COUNT_PROBS) + 1
    classes = list(rng.choice(demo_classes, num_classes, replace=False))
    if len(classes) < MAX_OBJECTS and rng.random() < EXTRA_OBJECT_PROB:
        classes.append(rng.choice(classes))
    return [int(c) for c in rng.permutation(classes)]


def random_pose(height, width, radius_range, rng):
    radius = min(height, width) * rng.uniform(*radius_range)
    margin = 0.7 * radius   # objects may be cut a little by the image border
    return Pose(rng.uniform(margin, width - margin), rng.uniform(margin, height - margin), radius,
                rng.uniform(*ASPECT_RANGE), rng.uniform(0, 2 * np.pi))


def instance_map(coverages):
    """0 background, k+1 where object k is on top (drawn later = in front)."""
    instance = np.zeros(coverages[0].shape, np.int64)
    for k, cov in enumerate(coverages):
        instance[cov >= 0.5] = k + 1
    return instance


def visible_enough(instance, coverages):
    for k, cov in enumerate(coverages):
        visible = int((instance == k + 1).sum())
        if visible < MIN_VISIBLE_PIXELS or visible < MIN_VISIBLE_FRACTION * (cov >= 0.5).sum():
            return False
    return True


def place_objects(classes, height, width, rng):
    """Random poses until every object keeps enough visible area: (poses, coverages, instance map)."""
    radius_range = OBJECT_RADIUS[len(classes)]
    for _ in range(MAX_LAYOUT_TRIES):
        poses = [random_pose(height, width, radius_range, rng) for _ in classes]
        coverages = [coverage(posed_outlines(CLASS_STYLES[VOC_CLASSES[c]].shape, p), height, width)
                     for c, p in zip(classes, poses)]
        instance = instance_map(coverages)
        if visible_enough(instance, coverages):
            return poses, coverages, instance
    raise RuntimeError(f"no layout for {len(classes)} objects in {height}x{width} "
                       f"after {MAX_LAYOUT_TRIES} tries")


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
            part = np.where(u > rng.uniform(0.0, 0.5) * pose.radius, part * rng.uniform(*SAL_MISS_KEEP), part)
        sal = np.maximum(sal, part)
    sal = ndimage.gaussian_filter(sal, rng.uniform(*SAL_BLUR))
    ys, xs = np.nonzero(instance == 0)
    pick = rng.integers(len(ys))
    y, x = np.mgrid[0:height, 0:width]
    sigma = rng.uniform(*SAL_FALSE_SIGMA)
    sal += rng.uniform(*SAL_FALSE_PEAK) * np.exp(-((y - ys[pick]) ** 2 + (x - xs[pick]) ** 2) / (2 * sigma ** 2))
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


def render_sample(rng, min_size=MIN_SIZE, max_size=MAX_SIZE):
    """One synthetic image with its label map, saliency map and objects."""
    height, width = (int(v) for v in rng.integers(min_size, max_size + 1, size=2))
    classes = sample_object_classes(rng)
    image = background(height, width, rng)
    poses, coverages, instance = place_objects(classes, height, width, rng)
    for c, pose, cov in zip(classes, poses, coverages):
        image = blend(image, object_colours(CLASS_STYLES[VOC_CLASSES[c]], pose, height, width, rng), cov)
    image += rng.normal(0.0, PIXEL_NOISE, image.shape)
    rgb = np.round(np.clip(image, 0, 255)).astype(np.uint8)
    return Sample(rgb, segmentation_label(instance, classes), fake_saliency(instance, poses, rng),
                  object_boxes(instance, classes))


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


def multi_hot(sample):
    label = np.zeros(len(VOC_CLASSES), np.float32)
    label[[c for c, _, _ in sample.objects]] = 1.0
    return label


def write_sample(root, img_id, sample):
    save_rgb(root / "JPEGImages" / f"{img_id}.jpg", sample.rgb)
    save_label_png(root / "SegmentationClass" / f"{img_id}.png", sample.label)
    save_label_png(root / "SegmentationClassAug" / f"{img_id}.png", sample.label)
    save_gray_png(root / "SAL" / f"{img_id}.png", sample.saliency)
    with atomic_path(root / "Annotations" / f"{img_id}.xml") as tmp:
        annotation_xml(img_id, sample).write(tmp)


def readme_text(seed, num_train, num_val):
    styles = "\n".join(f"  {name:<10} {s.shape:<12} hue ~{s.hue:.0f} deg, {s.texture}"
                       for name, s in CLASS_STYLES.items())
    return f"""Synthetic demo dataset in the PASCAL VOC 2012 layout (NOT real VOC data).
Made by data/make_demo_dataset.py with --seed {seed}: {num_train} train, {num_val} val images;
the same seed gives the same bytes. Its numbers say nothing about the published results.

Classes used (VOC name, shape, colour family, texture):
{styles}

JPEGImages/<id>.jpg          RGB, JPEG quality 95
SegmentationClass/<id>.png   palette PNG: 0 background, c+1 VOC class c, 255 object boundaries
SegmentationClassAug/<id>.png  the same masks (the train_aug label folder)
Annotations/<id>.xml         VOC XML, one <object> per object (bndbox of its visible part)
SAL/<id>.png                 8-bit saliency, imitating an off-the-shelf detector (imperfect)
train.txt val.txt train_aug.txt  bare ids (train_aug = train)
cls_labels.npy               psa format: pickled dict id -> float32 (20,) multi-hot
"""


def make_demo_dataset(root, seed=0, num_train=NUM_TRAIN, num_val=NUM_VAL,
                      min_size=MIN_SIZE, max_size=MAX_SIZE):
    """Write the demo dataset under `root`; returns {"train": ids, "val": ids}. Image k depends
    only on (seed, k), so changing the counts keeps the other images as they were."""
    if num_train < 1 or num_val < 1:
        raise ValueError(f"need at least one train and one val image, got {num_train} and {num_val}")
    if not MIN_SIDE <= min_size <= max_size:
        raise ValueError(f"image sizes must satisfy {MIN_SIDE} <= min_size <= max_size, "
                         f"got {min_size}, {max_size}")
    root = Path(root)
    ids = [demo_id(k) for k in range(1, num_train + num_val + 1)]
    labels = {}
    for k, img_id in enumerate(ids, 1):
        sample = render_sample(np.random.default_rng([seed, k]), min_size, max_size)
        write_sample(root, img_id, sample)
        labels[img_id] = multi_hot(sample)
    splits = {"train": ids[:num_train], "val": ids[num_train:]}
    for name, split_ids in (("train", splits["train"]), ("val", splits["val"]),
                            ("train_aug", splits["train"])):
        save_text(root / f"{name}.txt", "".join(f"{i}\n" for i in split_ids))
    save_npy(root / "cls_labels.npy", labels)
    save_text(root / "README.txt", readme_text(seed, num_train, num_val))
    return splits



def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="demo_data", help="output folder (VOC layout)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument("--num_train", type=positive_int, default=NUM_TRAIN,
                        help="training images (train.txt = train_aug.txt)")
    parser.add_argument("--num_val", type=positive_int, default=NUM_VAL, help="validation images (val.txt)")
    parser.add_argument("--min_size", type=int, default=MIN_SIZE, help=f"smallest image side, >= {MIN_SIDE}")
    parser.add_argument("--max_size", type=int, default=MAX_SIZE, help="largest image side")
    args = parser.parse_args(argv)
    if not MIN_SIDE <= args.min_size <= args.max_size:
        parser.error(f"need {MIN_SIDE} <= --min_size <= --max_size")
    check_output_folder(args.root, "--root")
    start = time.perf_counter()
    splits = make_demo_dataset(args.root, args.seed, args.num_train, args.num_val, args.min_size, args.max_size)
    print(f"demo dataset: {len(splits['train'])} train + {len(splits['val'])} val images in {args.root} "
          f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    run_main(main)
