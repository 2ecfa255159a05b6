"""Reading and writing the files stages exchange: images, label PNGs, saliency
maps, CAM dicts. Every writer is atomic (temporary name, then rename), and every
reader raises `InputError` with one line naming the file and what is wrong."""
import json
import os
import shutil
import tempfile
from contextlib import contextmanager

import numpy as np
from PIL import Image

IGNORE_LABEL = 255
SETTINGS_FILE = "settings.json"  # what made an inference folder; eval_seg.py echoes it
_UMASK = os.umask(0)
os.umask(_UMASK)


class InputError(ValueError):
    """Bad user input: the message is one line that names the file and the fault."""


def voc_palette(n=256):
    """The PASCAL VOC colour map (bit-interleaved class index), flat list of 3n ints."""
    palette = []
    for index in range(n):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


VOC_PALETTE = voc_palette()


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only on success."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    base, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def link_file(src, path, copy=False):
    """`path` as a symbolic link to `src` (absolute), or with `copy` a copy of it, made
    under a temporary name and renamed onto `path`."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    if os.path.lexists(tmp):
        os.remove(tmp)
    try:
        if copy:
            shutil.copyfile(src, tmp)
        else:
            os.symlink(os.path.abspath(src), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def save_npy(path, obj):
    """np.save through a temporary file (dicts are pickled, as psa's .npy CAM files)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, obj, allow_pickle=True)


def save_label_png(path, label, palette=VOC_PALETTE):
    """A label map (values 0..N-1, 255 ignore) as a palette PNG."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise InputError(f"{path}: label map must be 2-D, got shape {label.shape}")
    img = Image.fromarray(label.astype(np.uint8), mode="P")
    img.putpalette(palette)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def save_text(path, text):
    """A text file (lists, markers, tables)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def save_json(path, obj, sort_keys=False):
    """A JSON file (settings.json of inference folders, evaluation results, logs)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, sort_keys=sort_keys)


def load_json(path, what):
    """A parsed JSON file; a missing or unparsable one is an InputError naming it as `what`."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: {what} not found")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable {what} ({exc})") from None


def save_gray_png(path, array):
    """An 8-bit grayscale PNG (saliency maps, grey label maps)."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(array).astype(np.uint8), mode="L").save(tmp, format="PNG")


def save_rgb(path, rgb):
    """An RGB uint8 image; format from the extension (.png / .jpg)."""
    ext = os.path.splitext(path)[1].lower()
    fmt = "JPEG" if ext in (".jpg", ".jpeg") else "PNG"
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(tmp, format=fmt, quality=95)


def _open(path, what):
    if not os.path.isfile(path):
        raise InputError(f"{path}: {what} not found")
    try:
        img = Image.open(path)
        img.load()
    except Exception as exc:  # PIL raises many kinds for a broken file
        raise InputError(f"{path}: unreadable {what} ({exc.__class__.__name__}: {exc})") from None
    return img


def read_image(path):
    """RGB uint8 array (H, W, 3)."""
    return np.asarray(_open(path, "image").convert("RGB"))


def read_label_png(path, num_classes=None, shape=None):
    """Label indices (H, W) uint8 from a palette or grey PNG; checks, if given, the value
    range (0..num_classes-1 or 255; num_classes with background) and the (H, W) shape."""
    img = _open(path, "label PNG")
    if img.mode not in ("P", "L"):
        raise InputError(f"{path}: label PNG must be palette or grayscale, got mode {img.mode}")
    label = np.asarray(img)
    bad = (label >= num_classes) & (label != IGNORE_LABEL) if num_classes else None
    if bad is not None and bad.any():
        raise InputError(f"{path}: label value {int(label[bad][0])} out of range "
                         f"(expected 0..{num_classes - 1} or {IGNORE_LABEL})")
    _check_shape(path, "label PNG", label.shape, shape)
    return label


def read_saliency(path, shape=None):
    """Saliency map as float in [0, 1] (H, W) from an 8-bit PNG/JPG."""
    img = _open(path, "saliency map")
    sal = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    _check_shape(path, "saliency map", sal.shape, shape)
    return sal


def _check_shape(path, what, got, expected):
    if expected is not None and tuple(got[:2]) != tuple(expected[:2]):
        raise InputError(f"{path}: {what} has size {got[0]}x{got[1]} (HxW) but the image is "
                         f"{expected[0]}x{expected[1]}")


def load_cam_dict(path, label=None):
    """A psa-format CAM dict {class index: (H, W) float array}. With `label` (multi-hot
    image label), a class that is not in the image label is an error."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: CAM file not found")
    try:
        cams = np.load(path, allow_pickle=True)
        if cams.dtype == object and cams.shape == ():
            cams = cams.item()
    except Exception as exc:
        raise InputError(f"{path}: unreadable CAM file ({exc})") from None
    if not isinstance(cams, dict):
        raise InputError(f"{path}: CAM file must hold a dict {{class index: HxW array}}")
    if label is not None:
        present = set(np.nonzero(np.asarray(label) > 1e-5)[0].tolist())
        extra = sorted(set(int(k) for k in cams) - present)
        if extra:
            raise InputError(f"{path}: CAM dict has class {extra[0]} that is not in the image label "
                             f"(label classes {sorted(present)})")
    return {int(k): np.asarray(v) for k, v in cams.items()}


def cam_dict_to_array(cams, num_classes, shape):
    """Dense (num_classes, H, W) float32 array from a CAM dict (missing classes are 0)."""
    out = np.zeros((num_classes,) + tuple(shape), np.float32)
    for k, v in cams.items():
        out[k] = v
    return out


def output_done(path, overwrite):
    """True when a stage may skip this output (it exists and --overwrite was not given)."""
    return not overwrite and os.path.exists(path)
