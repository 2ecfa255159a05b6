"""One class vocabulary for every stage: how many classes a run has and what they are
called.

The count comes from the data a stage reads anyway: the length of the image-label vectors
(`cls_labels.npy`) or the class head of the segmentation checkpoint it loads, so a COCO
run needs no class flag. `--dataset voc|coco` sets the count where a stage reads neither
(eval_seg.py on a bare --gt_dir); `--num_classes` stays accepted with the meaning the
original script gave it (psa/InferCam scripts: foreground classes, VOC 20; AuxSegNet and
segmentation scripts: classes including background, VOC 21). Whatever is given must agree
with the data and with each other, else one InputError line. Counts returned here are
foreground classes."""
import os
from dataclasses import dataclass

from tool.core.checkpoint import segmentation_class_count
from tool.core.io import InputError
from tool.data.coco import COCO_CLASSES
from tool.data.voc import VOC_CLASSES, get_image_label, load_cls_labels

DATASET_CLASSES = {"voc": VOC_CLASSES, "coco": COCO_CLASSES}
DEFAULT_DATASET = "voc"  # what the original scripts assumed
DEFAULT_NUM_CLASSES = len(DATASET_CLASSES[DEFAULT_DATASET])
BACKGROUND_NAME = "background"
LABEL_PRESENT = 1e-5  # a class is in the image label when its entry exceeds this (psa)


def add_dataset_arg(group, found_in=None):
    """--dataset on an argparse group. found_in: where the stage reads the class count from
    (for the help), None when only the flags (or the VOC default) set it."""
    group.add_argument("--dataset", choices=sorted(DATASET_CLASSES), default=None,
                       help="voc (20 classes) or coco (80 classes): the class count and names" +
                            (f", checked against {found_in}" if found_in else
                             f" (default {DEFAULT_DATASET})"))


def add_class_args(group, with_background, found_in=None):
    """--dataset and --num_classes on an argparse group. with_background: --num_classes
    counts the background (AuxSegNet and segmentation scripts) or not (psa/InferCam)."""
    if with_background:
        meaning = "classes including background (VOC 21, COCO 81)"
    else:
        meaning = "foreground classes, background not counted (VOC 20, COCO 80)"
    source = (f"from {found_in} (a different value is an error)" if found_in
              else f"--dataset's, else {DEFAULT_DATASET}'s")
    add_dataset_arg(group, found_in)
    group.add_argument("--num_classes", type=int, default=None,
                       help=f"{meaning}; default: {source}")
    group.set_defaults(num_classes_with_background=with_background)


def _flag_claims(args):
    """[(foreground count, the flag that says so)] of --dataset and --num_classes (a stage
    may have neither: train_aff.py's AffinityNet has no classes)."""
    claims = []
    if getattr(args, "dataset", None) is not None:
        claims.append((len(DATASET_CLASSES[args.dataset]), f"--dataset {args.dataset}"))
    if getattr(args, "num_classes", None) is not None:
        background = args.num_classes_with_background
        count = args.num_classes - 1 if background else args.num_classes
        flag = f"--num_classes {args.num_classes}" + (" (with background)" if background else "")
        if count < 1:
            raise InputError(f"{flag}: leaves no foreground class")
        claims.append((count, flag))
    return claims


def resolve_num_classes(args, found=None, source=None, default=DEFAULT_NUM_CLASSES):
    """The foreground class count of a run: `found` (what the data read from `source`
    holds, or None), --dataset and --num_classes must agree; without any of them,
    `default` (VOC's 20)."""
    claims = _flag_claims(args)
    for count, flag in claims:
        if found is not None and count != found:
            raise InputError(f"{source}: holds {found} foreground classes, but {flag} gives "
                             f"{count}")
        if count != claims[0][0]:
            raise InputError(f"{flag} gives {count} foreground classes, but {claims[0][1]} "
                             f"gives {claims[0][0]}")
    if found is not None:
        return found
    return claims[0][0] if claims else default


def class_flags(args):
    """The class flags a driver was given, to pass on to the stages it runs."""
    flags = [] if args.dataset is None else ["--dataset", args.dataset]
    return flags + ([] if args.num_classes is None else ["--num_classes", str(args.num_classes)])


def labels_num_classes(labels):
    """The length of the image-label vectors of a `load_cls_labels` dict (None if empty)."""
    return len(next(iter(labels.values()))) if labels else None


@dataclass(frozen=True)
class LabelledImages:
    """What a stage works on: the listed ids whose image label names a class (in list
    order), the image labels ({} without a label file) and their path, the foreground
    class count and how many listed ids were skipped for naming no class."""
    ids: list
    labels: dict
    labels_path: str | None
    num_classes: int
    unlabelled: int

    @property
    def skipped(self):
        """The summary-line phrase for the skipped images."""
        return f"{self.unlabelled} without a labelled class skipped"


def labelled_images(args, ids, labels_path, labels=None):
    """Every listing stage's start: the image labels at `labels_path` (None: no label
    file; `labels` given: those labels, read from `labels_path`) give the class count,
    checked against the class flags (else the flags' count or VOC's), and drop the ids
    whose label names no class (COCO has such images). An id missing from the labels is
    an InputError."""
    if labels is None:
        labels = {} if labels_path is None else load_cls_labels(labels_path)
    num_classes = resolve_num_classes(args, labels_num_classes(labels), labels_path)
    kept = list(ids) if labels_path is None else \
        [i for i in ids if has_class(get_image_label(labels, i, labels_path))]
    return LabelledImages(kept, labels, labels_path, num_classes, len(ids) - len(kept))


def resolve_checkpoint_num_classes(args, state, weights):
    """Classes INCLUDING background of a segmentation checkpoint's state dict (its class
    head), checked against the flags; the flags' (or VOC's) count when it has no head."""
    rows = segmentation_class_count(state)
    return resolve_num_classes(args, None if rows is None else rows - 1, weights) + 1


def class_names(num_classes, dataset=None):
    """Foreground class names: --dataset's, else those of the dataset with that many
    classes, else `class<label value>`."""
    if dataset is not None and len(DATASET_CLASSES[dataset]) == num_classes:
        return DATASET_CLASSES[dataset]
    by_count = [names for names in DATASET_CLASSES.values() if len(names) == num_classes]
    return by_count[0] if by_count else tuple(f"class{c + 1}" for c in range(num_classes))


def segmentation_class_names(num_classes, dataset=None):
    """Label-map class names: background, then `class_names` (num_classes: foreground)."""
    return (BACKGROUND_NAME,) + tuple(class_names(num_classes, dataset))


def file_name_part(name):
    """A class name as it goes into file names (`traffic light` -> `traffic_light`)."""
    return name.replace(" ", "_")


def has_class(label):
    """True when an image label names at least one class."""
    return bool((label > LABEL_PRESENT).any())


def add_optional_labels_arg(group, why_skipped, also_for=""):
    """--cls_labels of a stage that uses image labels to skip unlabelled images
    (`why_skipped`; `also_for`: what else it reads from them); resolved by
    optional_labels_path."""
    group.add_argument("--cls_labels", default=None,
                       help=f"image labels{also_for}: images without a labelled class are "
                            f"skipped ({why_skipped}); default: <voc12_root>/cls_labels.npy "
                            "when it exists, else every listed image is used")


def optional_labels_path(cls_labels, root):
    """--cls_labels of a stage that only uses image labels to skip unlabelled images:
    the given path, else `<root>/cls_labels.npy` when that exists, else None."""
    if cls_labels:
        return cls_labels
    default = os.path.join(root, "cls_labels.npy") if root else None
    return default if default and os.path.isfile(default) else None
