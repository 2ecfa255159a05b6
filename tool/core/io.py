"""Reading and writing the files stages exchange: images, label PNGs, saliency
maps, CAM dicts. Every writer is atomic (temporary name, then rename), and every
reader raises `InputError` with one line naming the file and what is wrong."""
import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager

import numpy as np
from PIL import Image

IGNORE_LABEL = 255
EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
SETTINGS_FILE = "settings.json"  # what made an inference folder; eval_seg.py echoes it
WORKER_TRACEBACK = "\nOriginal Traceback"  # torch's re-raise of a DataLoader worker's error
_UMASK = os.umask(0)
os.umask(_UMASK)


class InputError(ValueError):
    """Bad user input: the message is one line that names the file and the fault.

    Raised inside a DataLoader worker, it comes back re-created from the worker's whole
    traceback ("Caught InputError in DataLoader worker process 0. Original Traceback ...
    tool.core.io.InputError: <line>"); the constructor keeps the original line, so the error
    reads the same from a worker as from the main process (a process pool re-raises the
    pickled error itself)."""

    def __init__(self, message):
        super().__init__(self._original_line(str(message)))

    @classmethod
    def _original_line(cls, message):
        if WORKER_TRACEBACK not in message:
            return message
        last = message.rstrip().splitlines()[-1]
        prefix = f"{cls.__module__}.{cls.__qualname__}: "
        return last[len(prefix):] if last.startswith(prefix) else last


class RunError(RuntimeError):
    """A run that cannot go on through no fault of the input (e.g. training diverged):
    one line naming what happened, exit code 1 (tool.core.cli.run_main)."""


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


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


def _check_writable(name, folder, what):
    base = _nearest_existing(folder)
    if not os.path.isdir(base):
        where = ("is a file, not a folder" if base == os.path.abspath(name)
                 else f"lies under the file {base}")
        raise InputError(f"{name}: {what} {where}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"{name}: {what} is not writable ({base} is read-only)")


def check_output_folder(folder, what="output folder"):
    """InputError naming `folder` (and `what` it is, e.g. the flag) unless it is a folder,
    or can be made one, that this process may write in. Creates nothing."""
    folder = os.fspath(folder)
    _check_writable(folder, folder, what)


def check_output_file(path, what="output file"):
    """InputError naming `path` unless a file can be written there: not a folder, and
    its folder exists or can be made, writable. Creates nothing."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"{path}: {what} is a folder; give a file name")
    _check_writable(path, os.path.dirname(os.path.abspath(path)), what)


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it onto `path` only on success. A
    place that cannot take the file (a folder, under a file, read-only) is an InputError."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    check_output_file(path)
    base, ext = os.path.splitext(os.path.basename(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{ext}", dir=folder)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror})") from None
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


def finite_json(obj):
    """`obj` with every NaN/Inf float replaced by None, so that it is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def json_line(obj):
    """One line of strict JSON (log lines): non-finite numbers become null."""
    return json.dumps(finite_json(obj), allow_nan=False)


def save_json(path, obj, sort_keys=False):
    """A strict JSON file (settings.json of inference folders, evaluation results, logs):
    non-finite numbers are written as null, never as the NaN/Infinity tokens that strict
    parsers reject."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(finite_json(obj), f, indent=1, sort_keys=sort_keys, allow_nan=False)


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


def _is_16bit(img):
    """A 16-bit greyscale image (PIL opens 16-bit colour PNGs as 8-bit RGB itself)."""
    return img.mode in SIXTEEN_BIT_MODES or (img.mode == "I" and img.format == "PNG")


def read_image(path):
    """RGB uint8 array (H, W, 3) from any 8-bit image. A 16-bit image is converted, not
    clipped: its high byte is kept (as PIL does for 16-bit colour PNGs); other modes
    (32-bit integer, float) are refused."""
    img = _open(path, "image")
    if _is_16bit(img):
        grey = (np.asarray(img, dtype=np.uint32) >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode not in EIGHT_BIT_MODES:
        raise InputError(f"{path}: image has mode {img.mode}; images must be 8-bit "
                         "(RGB, grey or palette) or 16-bit")
    return np.asarray(img.convert("RGB"))


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
    """Saliency map as float in [0, 1] (H, W) from an 8-bit PNG/JPG (grey, or colour
    taken as its luminance); a 16-bit or float map is refused, not clipped."""
    img = _open(path, "saliency map")
    if img.mode not in EIGHT_BIT_MODES:
        raise InputError(f"{path}: saliency map has mode {img.mode}"
                         f"{' (16-bit)' if _is_16bit(img) else ''}; saliency maps are 8-bit "
                         "(0..255)")
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
        missing = sorted(present - set(int(k) for k in cams))
        if missing:
            raise InputError(f"{path}: CAM dict lacks class {missing[0]} of the image label "
                             f"(label classes {sorted(present)}, dict classes "
                             f"{sorted(int(k) for k in cams)})")
    cams = {int(k): np.asarray(v) for k, v in cams.items()}
    for key, value in cams.items():
        if value.dtype.kind not in "fiub":
            raise InputError(f"{path}: map of key {key} is not numeric (dtype {value.dtype})")
        if not np.isfinite(value).all():
            raise InputError(f"{path}: map of key {key} has NaN/Inf values")
    return cams


def cam_dict_to_array(cams, num_classes, shape):
    """Dense (num_classes, H, W) float32 array from a CAM dict (missing classes are 0)."""
    out = np.zeros((num_classes,) + tuple(shape), np.float32)
    for k, v in cams.items():
        out[k] = v
    return out


def output_done(path, overwrite):
    """True when a stage may skip this output (it exists and --overwrite was not given)."""
    return not overwrite and os.path.exists(path)


def _settings_difference(recorded, wanted):
    """The first setting (in `wanted`'s order) whose value differs, or None."""
    missing = object()
    for key in list(wanted) + [k for k in recorded if k not in wanted]:
        if recorded.get(key, missing) != wanted.get(key, missing):
            return key
    return None


class OutputClaim:
    """The settings a run records in its output folders (see claim_output_folders)."""

    def __init__(self, outputs):
        self.pending = outputs

    def record(self):
        """Write settings.json into every claimed folder (the first call only): call it
        when the first output is about to be written, so a run that fails before leaves
        nothing behind."""
        for _, folder, settings in self.pending:
            save_json(os.path.join(folder, SETTINGS_FILE), settings)
        self.pending = []

    def recording(self, results):
        """`results` (e.g. of a process pool that writes outputs), recording the settings
        when the first one arrives."""
        for result in results:
            self.record()
            yield result


def claim_output_folders(outputs, overwrite):
    """Make the output folders of a run its own. `outputs`: (what, folder, settings)
    triples, `what` naming the folder (its flag), folder None when not asked for, settings
    a JSON-ready dict of what decides the folder's content. Every folder must be writable;
    one whose settings.json says an earlier run wrote it with other settings is refused
    with one line naming the setting, unless `overwrite` (this run then redoes its images).
    Returns the OutputClaim whose record() writes settings.json (before the first output)."""
    outputs = [(what, os.fspath(folder), json.loads(json_line(settings)))
               for what, folder, settings in outputs if folder]
    for what, folder, settings in outputs:
        check_output_folder(folder, what)
        path = os.path.join(folder, SETTINGS_FILE)
        if overwrite or not os.path.isfile(path):
            continue
        recorded = load_json(path, "settings file")
        key = _settings_difference(recorded if isinstance(recorded, dict) else {}, settings)
        if key is not None:
            def shown(record):
                return json.dumps(record[key]) if key in record else "(not set)"
            raise InputError(f"{path}: {what} was written with {key} {shown(recorded)}, this "
                             f"run has {key} {shown(settings)}; give --overwrite to redo the "
                             "folder, or another folder")
    return OutputClaim(outputs)
