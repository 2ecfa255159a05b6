"""PASCAL VOC 2012 (+ SBD augmentation) readers: list files, the psa image-label dict
`cls_labels.npy`, the devkit folders, and small torch Datasets over image ids.

Every fault raises `InputError` with one line naming the file."""
import os

import numpy as np
from torch.utils.data import Dataset

from tool.core.dist import shard_ids
from tool.core.io import InputError, read_image, read_label_png, read_saliency

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")
NUM_CLASSES = len(VOC_CLASSES)
IMAGE_EXTENSIONS = (".jpg", ".png", ".jpeg")


def id_from_list_entry(entry):
    """`2007_000032`, `2007_000032.jpg` or `/JPEGImages/2007_000032.jpg` -> `2007_000032`."""
    name = entry.rsplit("/", 1)[-1]
    stem, ext = os.path.splitext(name)
    return stem if ext.lower() in IMAGE_EXTENSIONS else name


def read_image_list(path):
    """Image ids of a list file: bare ids (AuxSegNet) or psa pair lines
    `/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png`; blank lines are skipped."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: list file not found")
    with open(path) as f:
        ids = [id_from_list_entry(line.split()[0]) for line in f if line.strip()]
    if not ids:
        raise InputError(f"{path}: list file has no image ids")
    return ids


def load_cls_labels(path, num_classes=None):
    """psa `cls_labels.npy`: pickled dict image id -> float32 multi-hot (num_classes,);
    num_classes None: any length (VOC 20, COCO 80), the same for every image."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: image-label file (cls_labels.npy) not found")
    try:
        labels = np.load(path, allow_pickle=True)
        labels = labels.item() if labels.dtype == object and labels.shape == () else labels
    except Exception as exc:
        raise InputError(f"{path}: unreadable image-label file ({exc})") from None
    if not isinstance(labels, dict):
        raise InputError(f"{path}: image-label file must hold a dict {{image id: multi-hot}}")
    out = {}
    for img_id, label in labels.items():
        label = np.asarray(label, dtype=np.float32)
        if num_classes is None and label.ndim == 1 and label.size:
            num_classes = label.size  # the first label sets the length for the rest
        if label.shape != (num_classes,):
            raise InputError(f"{path}: label of {img_id} has shape {label.shape}, "
                             f"expected ({num_classes},)")
        out[str(img_id)] = label
    return out


def get_image_label(labels, img_id, labels_path):
    """The multi-hot label of one image; a missing id names the label file."""
    if img_id not in labels:
        raise InputError(f"{labels_path}: no image label for id {img_id}")
    return labels[img_id]


def find_image(img_dir, img_id):
    """Path of `<img_dir>/<id>.jpg` (else .png, .jpeg)."""
    for ext in IMAGE_EXTENSIONS:
        path = os.path.join(img_dir, img_id + ext)
        if os.path.isfile(path):
            return path
    raise InputError(f"{os.path.join(img_dir, img_id + IMAGE_EXTENSIONS[0])}: missing image")


def find_label(label_dir, img_id, what="label PNG"):
    """Path of `<label_dir>/<id>.png` (a label PNG, or `what` it holds)."""
    path = os.path.join(label_dir, img_id + ".png")
    if not os.path.isfile(path):
        raise InputError(f"{path}: missing {what}")
    return path


def voc_dirs(voc12_root):
    """The devkit folders: images (JPEGImages), labels (SegmentationClassAug, else
    SegmentationClass, else None), saliency (SAL or None), annotations (Annotations or None)."""
    images = os.path.join(voc12_root, "JPEGImages")
    if not os.path.isdir(images):
        raise InputError(f"{images}: VOC image folder not found (is --voc12_root the "
                         "VOC2012 folder?)")

    def first_dir(*names):
        paths = [os.path.join(voc12_root, n) for n in names]
        return next((p for p in paths if os.path.isdir(p)), None)

    return {"images": images,
            "labels": first_dir("SegmentationClassAug", "SegmentationClass"),
            "saliency": first_dir("SAL"),
            "annotations": first_dir("Annotations")}


def add_infer_data_args(group, cls_labels_help="psa cls_labels.npy", list_default=None,
                        root_required=True):
    """--infer_list, --voc12_root and --cls_labels of the psa-style inference scripts;
    `list_default` (a path relative to the working directory, as the released scripts
    had) makes --infer_list optional."""
    group.add_argument("--infer_list", required=list_default is None, default=list_default,
                       help="image ids (bare or psa pair lines)"
                            + (f"; released default: {list_default}" if list_default else ""))
    group.add_argument("--voc12_root", required=root_required, default=None,
                       help="folder holding JPEGImages/ (VOC2012, or data/make_coco.py's output)")
    group.add_argument("--cls_labels", default=None,
                       help=f"{cls_labels_help} (default: <voc12_root>/cls_labels.npy)")


def infer_data(args):
    """The arguments of `add_infer_data_args` resolved: (this process's shard of the
    listed ids, the image folder, the image-label file). Without --voc12_root (where it
    is optional) the folder is None, and so is the label file unless --cls_labels is
    given."""
    root = args.voc12_root
    labels_path = args.cls_labels or (os.path.join(root, "cls_labels.npy") if root else None)
    ids = shard_ids(read_image_list(args.infer_list), args)
    return ids, os.path.join(root, "JPEGImages") if root else None, labels_path


def labels_for_ids(ids, labels, labels_path):
    """Look up every id at once, so a missing one fails before training starts."""
    return [get_image_label(labels, img_id, labels_path) for img_id in ids]


class VOCImageDataset(Dataset):
    """(id, rgb uint8 HxWx3, image label or None) per id; `transform(rgb)`, when given,
    replaces the image (psa's VOC12ClsDataset / VOC12ImageDataset)."""

    def __init__(self, ids, img_dir, labels=None, labels_path="cls_labels.npy",
                 transform=None):
        self.ids = list(ids)
        self.img_dir = img_dir
        self.labels = None if labels is None else labels_for_ids(self.ids, labels, labels_path)
        self.transform = transform

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, index):
        img_id = self.ids[index]
        rgb = read_image(find_image(self.img_dir, img_id))
        if self.transform is not None:
            rgb = self.transform(rgb)
        return img_id, rgb, None if self.labels is None else self.labels[index]


def read_seg_sample(img_id, img_dir, label_dir, saliency_dir=None, num_classes=NUM_CLASSES + 1):
    """One image with its label map (and saliency in [0, 1]), sizes checked against the
    image: dict id, rgb, seg, sal (None without saliency_dir)."""
    rgb = read_image(find_image(img_dir, img_id))
    seg = read_label_png(find_label(label_dir, img_id), num_classes, shape=rgb.shape)
    sal = None
    if saliency_dir is not None:
        sal = read_saliency(find_label(saliency_dir, img_id, "saliency map"), shape=rgb.shape)
    return {"id": img_id, "rgb": rgb, "seg": seg, "sal": sal}


class VOCSegDataset(Dataset):
    """`read_seg_sample` per id plus "label" (image label or None); `transform(sample)`,
    when given, returns what the loader yields (AuxSegNet / segmentation training)."""

    def __init__(self, ids, img_dir, label_dir, saliency_dir=None, labels=None,
                 labels_path="cls_labels.npy", transform=None, num_classes=NUM_CLASSES + 1):
        self.ids = list(ids)
        self.dirs = (img_dir, label_dir, saliency_dir)
        self.labels = None if labels is None else labels_for_ids(self.ids, labels, labels_path)
        self.transform = transform
        self.num_classes = num_classes

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, index):
        sample = read_seg_sample(self.ids[index], *self.dirs, num_classes=self.num_classes)
        sample["label"] = None if self.labels is None else self.labels[index]
        return sample if self.transform is None else self.transform(sample)
