"""InferCam (Sun, Zhang & Barnes, WACV 2022): class-conditional CAMs without retraining.

The image is cut into four corner crops around the mass centres of its classes' CAMs
(`split_img.py`); each crop's multi-scale CAM is refined by iterative erasing (the pixels
already activated are filled with the input's mean and the CAM is computed again), and the
four crop CAMs are merged by maximum (`infer_cam.py`). Works with any network that has
`forward_cam` (see tool/cam/multiscale.py); the defaults reproduce the released code, quirks included."""
import os

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from tool.cam.multiscale import (CAM_SCALES, multi_hot, normalize_cam, scaled_inputs,
                                 summed_cams_many, with_flips)
from tool.core.io import InputError, atomic_path, load_json, save_json
from tool.core.precision import DEFAULT_PRECISION, precision_context

SPLIT_MARGINS = {1: 10, 2: 20}  # split_img.py: buffer (px) around the centres, by class count
NUM_CROPS = 4
# Corner of the image each crop touches, in split order <id>_1 .. <id>_4.
CROP_CORNERS = (("top", "left"), ("top", "right"), ("bottom", "left"), ("bottom", "right"))
MAX_ROUNDS = 5  # infer_cam.py: erasing rounds per crop
ERASE_THRESHOLD = 0.7  # a pixel whose running-max CAM reaches this is erased next round
MIN_SHRINK = 0.02  # stop when the left area shrinks by less than this fraction of the crop
CROP_JPEG_QUALITY = 95  # split_img.py writes the crops with cv2.imwrite's default quality
RELEASED_INFER_LIST = "voc12/train.txt"  # split_img.py / infer_cam.py default, cwd-relative


def mass_centers(cams, classes):
    """(K, 2) int64 (row, col) mass centre of each class's CAM, truncated by int() as
    split_img.py; the image centre when a CAM is all zero (its centre is undefined).
    `cams[c]` is class c's (H, W) map: a dense (C, H, W) array or a CAM dict."""
    centers = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for c in classes:
            height, width = np.shape(cams[c])
            center = ndimage.center_of_mass(np.asarray(cams[c]))
            centers.append([int(v) for v in center] if np.all(np.isfinite(center))
                           else [height // 2, width // 2])
    return np.array(centers, np.int64).reshape(-1, 2)


def split_boxes(centers, height, width, clamp=False):
    """The four crops as numpy slice bounds (r0, r1, c0, c1): [0:Rmax+m, 0:Cmax+m],
    [0:Rmax+m, Cmin-m:W], [Rmin-m:H, 0:Cmax+m], [Rmin-m:H, Cmin-m:W] with margin m = 10
    for one class and 20 for two; three or more classes give four whole images.
    As released, a start below 0 stays negative (numpy then keeps only the last rows or
    columns); `clamp` starts such a crop at 0 and clips the ends to the image."""
    if len(centers) == 0:
        raise ValueError("no class to split the image around")
    margin = SPLIT_MARGINS.get(len(centers))
    if margin is None:
        return [(0, height, 0, width)] * NUM_CROPS
    bottom = int(centers[:, 0].max()) + margin
    right = int(centers[:, 1].max()) + margin
    top = int(centers[:, 0].min()) - margin
    left = int(centers[:, 1].min()) - margin
    if clamp:
        top, left = max(top, 0), max(left, 0)
        bottom, right = min(bottom, height), min(right, width)
    return [(0, bottom, 0, right), (0, bottom, left, width),
            (top, height, 0, right), (top, height, left, width)]


def crop(image, box):
    """image[r0:r1, c0:c1] with numpy's slice rules (negative starts wrap, as released)."""
    r0, r1, c0, c1 = box
    return image[r0:r1, c0:c1]


def left_masks(left, sizes, chained=True):
    """The (h, w) 0/1 `left` map resized with torch's default nearest mode to each size.
    chained (as released): every resize starts from the previous result, so the 1.5x and
    2x masks are upsampled from the 0.5x one; otherwise each starts from `left`."""
    source = torch.as_tensor(left, dtype=torch.float32)[None, None]
    masks = []
    for size in sizes:
        resized = F.interpolate(masks[-1][None] if chained and masks else source,
                                size=tuple(size), mode="nearest")
        masks.append(resized[0])
    return masks


def erased_inputs(inputs, left, flipped, chained=True, flip_mask=False):
    """Each normalised (3, h, w) input kept where `left` is 1 and filled with its own
    per-channel mean (taken over the whole input) elsewhere. As released, the mask is not
    mirrored for the flipped inputs; `flip_mask` mirrors it."""
    masks = left_masks(left, [x.shape[-2:] for x in inputs], chained)
    out = []
    for x, mask, is_flipped in zip(inputs, masks, flipped):
        x = torch.from_numpy(x)
        if flip_mask and is_flipped:
            mask = mask.flip(-1)
        mean = x.mean(dim=(1, 2), keepdim=True)
        out.append(torch.where(mask > 0, x, mean).numpy())
    return out


@torch.no_grad()  # not inference_mode: autocast caches its weight casts only here
def refine_crop_cams(net, crops, label, scales=CAM_SCALES, device="cpu", max_rounds=MAX_ROUNDS,
                     threshold=ERASE_THRESHOLD, min_shrink=MIN_SHRINK, chained=True,
                     flip_mask=False, precision=DEFAULT_PRECISION):
    """InferCam's iterative erasing on each crop (uint8 RGB) of `crops`. Each round
    computes the multi-scale + flip CAM of the (erased) inputs and keeps the running max;
    pixels whose max over classes stays below `threshold` are "left". A crop stops after
    `max_rounds` or when its left area shrank by less than `min_shrink` of the crop.
    The crops still running do their round together (`summed_cams_many`: inputs of equal
    shape in one batch); a stopped crop leaves the batch. Per crop, returns the running
    max (C, h, w) float64 and the shrink fraction of every round it ran, as
    `refine_crop_cam` gives it alone."""
    device = torch.device(device)
    crops = [np.asarray(rgb) for rgb in crops]
    sizes = [rgb.shape[:2] for rgb in crops]
    inputs = [with_flips(scaled_inputs(rgb, scales)) for rgb in crops]
    flipped = [i % 2 == 1 for i in range(2 * len(scales))]
    cam_matrices = [np.zeros((len(label),) + size, np.float64) for size in sizes]
    lefts = [np.ones(size, bool) for size in sizes]
    shrinks = [[] for _ in crops]
    running = list(range(len(crops)))
    with precision_context(device, precision):  # bf16: each weight cast once for all rounds
        for round_index in range(max_rounds):
            if not running:
                break
            batches = [inputs[k] if round_index == 0 else
                       erased_inputs(inputs[k], lefts[k], flipped, chained, flip_mask)
                       for k in running]
            totals = summed_cams_many(net, batches, [sizes[k] for k in running], label,
                                      device, [flipped] * len(running), precision)
            for k, total in zip(running, totals):
                cam_matrices[k] = np.maximum(cam_matrices[k],
                                             normalize_cam(total).cpu().numpy())
                new_left = cam_matrices[k].max(axis=0) < threshold
                shrinks[k].append((int(lefts[k].sum()) - int(new_left.sum())) / lefts[k].size)
                lefts[k] = new_left
            running = [k for k in running if shrinks[k][-1] >= min_shrink]
    return list(zip(cam_matrices, shrinks))


def refine_crop_cam(net, rgb, label, **refine_options):
    """`refine_crop_cams` of one crop: (running max (C, h, w) float64, shrink per round)."""
    return refine_crop_cams(net, [rgb], label, **refine_options)[0]


def split_from_cams(cams, classes, image_hw, clamp=False):
    """split_img.py's split of one image from its multi-scale CAM (`cams[c]`: a dense
    array or infer_cls.py's CAM dict, which holds the same maps): (mass centres, the four
    crop boxes)."""
    centers = mass_centers(cams, classes)
    return centers, split_boxes(centers, *image_hw, clamp=clamp)


def corner_slices(index, crop_hw, image_hw):
    """Rows and columns of the image that crop `index` (0..3) covers: flush to its corner."""
    (h, w), (height, width) = crop_hw, image_hw
    if h > height or w > width:
        raise ValueError(f"crop {index + 1} is {h}x{w} but the image is {height}x{width}")
    vertical, horizontal = CROP_CORNERS[index]
    rows = slice(0, h) if vertical == "top" else slice(height - h, height)
    cols = slice(0, w) if horizontal == "left" else slice(width - w, width)
    return rows, cols


def merge_crop_cams(crop_cams, image_hw):
    """The four crop CAMs (C, h_i, w_i) placed at their corners of a zero (C, H, W) canvas
    each, merged by per-pixel maximum (float64)."""
    merged = np.zeros((crop_cams[0].shape[0],) + tuple(image_hw), np.float64)
    for index, cam in enumerate(crop_cams):
        rows, cols = corner_slices(index, cam.shape[1:], image_hw)
        np.maximum(merged[:, rows, cols], cam, out=merged[:, rows, cols])
    return merged


def image_from_crops(crops, image_hw):
    """The image as the crops show it: each (h, w, 3) crop pasted at its corner of a black
    canvas (for overlays when the original image is not at hand)."""
    canvas = np.zeros(tuple(image_hw) + (3,), np.uint8)
    for index, rgb in enumerate(crops):
        rows, cols = corner_slices(index, rgb.shape[:2], image_hw)
        canvas[rows, cols] = rgb
    return canvas


def infer_cam(net, crops, label, image_hw, **refine_options):
    """InferCam's refined CAM of one image from its four corner crops (uint8 RGB):
    (merged (C, H, W) float64, shrink fractions per refined crop). A crop identical to an
    earlier one (three or more classes: four whole images) reuses its result instead of
    being refined again; the others are refined together (`refine_crop_cams`, which
    takes `refine_options`)."""
    twins = [next(i for i in range(index + 1) if np.array_equal(crops[i], rgb))
             for index, rgb in enumerate(crops)]
    unique = sorted(set(twins))
    refined = dict(zip(unique, refine_crop_cams(net, [crops[i] for i in unique], label,
                                                **refine_options)))
    merged = merge_crop_cams([refined[twin][0] for twin in twins], image_hw)
    return merged, [refined[i][1] for i in unique]


def crop_image_path(split_path, img_id, index):
    """`<split_path>/<id>_<n>.jpg`, n = 1..4: the released (and published) split layout."""
    return os.path.join(split_path, f"{img_id}_{index + 1}.jpg")


def split_record_path(split_path, img_id):
    return os.path.join(split_path, f"{img_id}.json")


def save_crop_jpeg(path, rgb):
    """One crop as split_img.py wrote it: OpenCV JPEG (BGR), quality 95."""
    bgr = np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])
    with atomic_path(path) as tmp:
        if not cv2.imwrite(tmp, bgr, [cv2.IMWRITE_JPEG_QUALITY, CROP_JPEG_QUALITY]):
            raise OSError(f"{path}: OpenCV could not write the crop")


def save_split_record(path, image_hw, num_classes, classes, centers, boxes, clamped):
    """The split of one image as JSON: image size, class count and classes, mass centres
    (row, col) and the four crop boxes (r0, r1, c0, c1) as the numpy slices used."""
    record = {"image_size": [int(v) for v in image_hw], "num_classes": int(num_classes),
              "classes": [int(c) for c in classes],
              "mass_centers": np.asarray(centers).tolist(),
              "boxes": [[int(v) for v in box] for box in boxes], "clamp_crops": bool(clamped)}
    save_json(path, record)


def save_unlabelled_record(path, num_classes):
    """The record of an image whose label names no class: no classes, no crops. split_img.py
    skips such an image, and so does infer_cam.py, taking the labels from the records."""
    save_json(path, {"num_classes": int(num_classes), "classes": []})


def is_unlabelled_record(record):
    """True for a record of `save_unlabelled_record`."""
    return isinstance(record, dict) and record.get("classes") == [] and "boxes" not in record


def load_split_record(path, allow_unlabelled=False):
    """A record of `save_split_record`, or with `allow_unlabelled` also one of
    `save_unlabelled_record` (returned as it is); a missing or malformed file is an
    InputError."""
    record = load_json(path, "split record (made by split_img.py)")
    if is_unlabelled_record(record):
        if allow_unlabelled:
            return record
        raise InputError(f"{path}: split_img.py had no labelled class for this image and cut "
                         "no crops, but the labels given here name one; split it again with "
                         "these labels (split_img.py --overwrite)")
    try:
        boxes = [tuple(int(v) for v in box) for box in record["boxes"]]
        image_hw = tuple(int(v) for v in record["image_size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: unreadable split record "
                         f"({exc.__class__.__name__}: {exc})") from None
    if len(boxes) != NUM_CROPS or any(len(box) != 4 for box in boxes) or len(image_hw) != 2:
        raise InputError(f"{path}: a split record needs 4 boxes (r0, r1, c0, c1) and an image size")
    return {**record, "boxes": boxes, "image_size": image_hw}


def labels_from_split_records(split_path, ids):
    """{id: image label} from split_img.py's records, for infer_cam.py without a label file;
    an image split_img.py had no labelled class for gets an all-zero label."""
    labels = {}
    for img_id in ids:
        path = split_record_path(split_path, img_id)
        if not os.path.isfile(path):
            raise InputError(f"{path}: split record not found (split_img.py writes one for "
                             "every listed image: run it again on this list to add the "
                             "missing ones); for crops without records give --voc12_root (or "
                             "--cls_labels) for the image labels")
        record = load_split_record(path, allow_unlabelled=True)
        if "num_classes" not in record:
            raise InputError(f"{path}: split record has no class count (written by an older "
                             "split_img.py; split again or give --cls_labels)")
        labels[img_id] = multi_hot(record["classes"], record["num_classes"])
    return labels
