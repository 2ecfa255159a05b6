"""Training augmentations on numpy arrays, each drawing from an explicit
`np.random.Generator` so a run is reproducible. Each random step is a `draw_...(rng)`
that returns its draws and a function that applies given draws, so a recorded run of
the original code (its scales, flips, crop offsets) can be replayed exactly.

Recipes they serve:
- psa classifier (train_cls): random_resize_long(256, 512) -> random_hflip -> color_jitter
  -> normalize -> random_crop(448) (zero padding after normalisation, image placed at a
  random spot of the crop when smaller).
- psa AffinityNet (train_aff, through tool/aff_labels.joint_augment): no resize ->
  color_jitter -> random_crop(448) of image and CRF score maps together (black padding) ->
  random_hflip -> normalize.
- AuxSegNet (train_AuxAff): random_scale(one scale per batch in [0.7, 1.3]; image and
  saliency bilinear, labels nearest) -> random_hflip -> normalize ->
  random_crop(321, pad_at="top_left", label_pad=0).
"""
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image, ImageEnhance

CV2_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
PAD_PLACEMENTS = ("random", "top_left")

_rng_by_seed = {}


def worker_rng():
    """A Generator seeded from torch's per-process seed: a different stream in every
    DataLoader worker and epoch, reproducible under torch.manual_seed."""
    seed = torch.initial_seed()
    if seed not in _rng_by_seed:
        _rng_by_seed.clear()
        _rng_by_seed[seed] = np.random.default_rng(seed)
    return _rng_by_seed[seed]


def restart_worker_rng():
    """Forget worker_rng's Generator: the next call starts the stream of torch's current
    seed afresh, even when that seed was used before in this process (a resumed epoch)."""
    _rng_by_seed.clear()
def draw_long_side(rng, min_long, max_long):
    """The random long side of random_resize_long: an integer in [min_long, max_long]."""
    return int(rng.integers(min_long, max_long, endpoint=True))


def resized_long_hw(h, w, long_side):
    """(height, width) with the long side `long_side` and the short side
    round(short * long_side / long) (psa RandomResizeLong)."""
    if w < h:
        return long_side, int(round(w * long_side / h))
    return int(round(h * long_side / w)), long_side


def resize_long(rgb, long_side):
    """Resize so the long side is `long_side` (resized_long_hw); PIL bicubic (psa)."""
    h, w = resized_long_hw(*rgb.shape[:2], long_side)
    return np.asarray(Image.fromarray(rgb).resize((w, h), Image.BICUBIC))


def random_resize_long(rgb, min_long, max_long, rng):
    """resize_long to a long side drawn from [min_long, max_long] (both included)."""
    return resize_long(rgb, draw_long_side(rng, min_long, max_long))


def shift_hue(img, hue):
    """Rotate the PIL HSV hue channel by `hue` of a full turn (in [-0.5, 0.5])."""
    h, s, v = img.convert("HSV").split()
    shifted = (np.asarray(h, np.int16) + int(round(hue * 255))) % 256
    hsv = Image.merge("HSV", (Image.fromarray(shifted.astype(np.uint8), "L"), s, v))
    return hsv.convert("RGB")


@dataclass(frozen=True)
class JitterDraws:
    """ColorJitter's draws: brightness, contrast and saturation factors, the hue shift
    (fraction of a turn) and the order of the four operations (indices 0-3 in that
    order)."""
    brightness: float
    contrast: float
    saturation: float
    hue: float
    order: tuple


def draw_jitter(rng, brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1):
    """torchvision-style ColorJitter draws: factors from [max(0, 1 - x), 1 + x], a hue shift
    from [-hue, hue], a random order (psa: 0.3, 0.3, 0.3, 0.1)."""
    bright, contr, satur = (rng.uniform(max(0.0, 1 - x), 1 + x)
                            for x in (brightness, contrast, saturation))
    hue_shift = rng.uniform(-hue, hue)
    order = tuple(int(i) for i in rng.permutation(4))
    return JitterDraws(bright, contr, satur, hue_shift, order)


def apply_jitter(rgb, draws):
    """The colour jitter of `draws` on uint8 RGB (PIL enhancers, HSV hue shift)."""
    ops = (lambda im: ImageEnhance.Brightness(im).enhance(draws.brightness),
           lambda im: ImageEnhance.Contrast(im).enhance(draws.contrast),
           lambda im: ImageEnhance.Color(im).enhance(draws.saturation),
           lambda im: shift_hue(im, draws.hue))
    img = Image.fromarray(np.asarray(rgb, np.uint8))
    for index in draws.order:
        img = ops[index](img)
    return np.asarray(img)


def color_jitter(rgb, rng, brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1):
    """apply_jitter with fresh draw_jitter draws."""
    return apply_jitter(rgb, draw_jitter(rng, brightness, contrast, saturation, hue))


def _one_or_tuple(arrays):
    return arrays[0] if len(arrays) == 1 else tuple(arrays)


def hflip(*arrays):
    """Mirror HxW[xC] arrays left-right (copies); one array in, one out."""
    return _one_or_tuple([np.ascontiguousarray(a[:, ::-1]) for a in arrays])


def draw_flip(rng):
    """True with probability 0.5."""
    return bool(rng.random() < 0.5)


def hflip_if(flip, *arrays):
    """hflip(*arrays) when `flip`, else the arrays unchanged."""
    return hflip(*arrays) if flip else _one_or_tuple(list(arrays))


def random_hflip(rng, *arrays):
    """hflip all arrays together with probability 0.5."""
    return hflip_if(draw_flip(rng), *arrays)


def draw_crop_offset(size, crop_size, rng, pad_at):
    """The crop offset along one axis: where the axis is longer than the crop, the start of
    a random window in it; else where the whole axis goes in the crop, at a random offset
    ("random", psa) or at 0 ("top_left", AuxSegNet)."""
    space = size - crop_size
    if space > 0:
        return int(rng.integers(0, space, endpoint=True))
    return int(rng.integers(0, -space, endpoint=True)) if pad_at == "random" else 0


def draw_crop_offsets(hw, crop_size, rng, pad_at="random"):
    """(top, left) offsets of random_crop for an image of size hw = (H, W)."""
    if pad_at not in PAD_PLACEMENTS:
        raise ValueError(f"pad_at must be one of {PAD_PLACEMENTS}, got {pad_at!r}")
    return tuple(draw_crop_offset(size, crop_size, rng, pad_at) for size in hw)


def crop_axis_window(size, crop_size, offset):
    """(source start, destination start, length) along one axis: `offset` is the source
    start where the axis is longer than the crop, else where the whole axis goes."""
    if size > crop_size:
        return offset, 0, crop_size
    return 0, offset, size


def paste_window(array, windows, crop_size, fill, spatial_axis):
    """Copy the windows of `array` (spatial axes spatial_axis, spatial_axis + 1) into a
    crop_size x crop_size container filled with `fill`."""
    shape = list(array.shape)
    shape[spatial_axis:spatial_axis + 2] = (crop_size, crop_size)
    out = np.full(shape, fill, dtype=array.dtype)
    src = [slice(None)] * array.ndim
    dst = [slice(None)] * array.ndim
    for axis, (start, offset, length) in zip((spatial_axis, spatial_axis + 1), windows):
        src[axis] = slice(start, start + length)
        dst[axis] = slice(offset, offset + length)
    out[tuple(dst)] = array[tuple(src)]
    return out


def crop_at(image_chw, crop_size, offsets, labels=(), label_pad=255):
    """Square crop of a (C, H, W) image at `offsets` = (top, left) (see crop_axis_window),
    zero padded where it is smaller, and the same window of each label map (H, W[, ...])
    padded with `label_pad` (a value or one per label). Returns the image, or
    (image, *labels)."""
    h, w = image_chw.shape[1:3]
    windows = [crop_axis_window(size, crop_size, offset)
               for size, offset in zip((h, w), offsets)]
    image = paste_window(np.asarray(image_chw, np.float32), windows, crop_size, 0, 1)
    pads = np.broadcast_to(np.asarray(label_pad), (len(labels),))
    crops = [paste_window(np.asarray(lab), windows, crop_size, pad, 0)
             for lab, pad in zip(labels, pads)]
    return _one_or_tuple([image] + crops)


def random_crop(image_chw, crop_size, rng, labels=(), label_pad=255, pad_at="random"):
    """crop_at offsets drawn by draw_crop_offsets: a normalised (C, H, W) image and its
    label maps (AuxSegNet pads its labels with 0 and places the image at the top left)."""
    offsets = draw_crop_offsets(image_chw.shape[1:3], crop_size, rng, pad_at)
    return crop_at(image_chw, crop_size, offsets, labels, label_pad)


def truncated_scaled_wh(h, w, scale):
    """(width, height) as AuxSegNet computes it: int(side * scale) (truncation)."""
    return max(1, int(w * scale)), max(1, int(h * scale))


def random_scale(image, scale, labels=(), interpolation="bilinear"):
    """Resize an HxW[x3] image (float32 result, OpenCV bilinear or bicubic) and label maps
    (nearest) by `scale`; the caller draws the scale (AuxSegNet: one per batch from
    [0.7, 1.3]). Saliency maps go in as images. Returns the image, or (image, *labels)."""
    size = truncated_scaled_wh(*np.shape(image)[:2], scale)
    out = [cv2.resize(np.asarray(image, np.float32), size,
                      interpolation=CV2_INTERPOLATION[interpolation])]
    out += [cv2.resize(np.asarray(lab), size, interpolation=cv2.INTER_NEAREST) for lab in labels]
    return _one_or_tuple(out)

