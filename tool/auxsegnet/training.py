"""AuxSegNet training (released `train_AuxAff.py`): the step-planned batches (one scale per
batch), the augmentation, the five-term loss, the optimiser and the training step."""
import functools
import os
from dataclasses import dataclass

import numpy as np
import torch.nn.functional as F
from torch.utils.data import Dataset

from network.resnet38d import normalize_image
from tool.core.batch_plan import StepPlan
from tool.core.io import IGNORE_LABEL
from tool.core.optim import PolyOptimizer_cls
from tool.core.precision import DEFAULT_PRECISION
from tool.core.train_step import sgd_step
from tool.data import transforms
from tool.data.voc import NUM_CLASSES, find_image, find_label, labels_for_ids, read_seg_sample

TRAIN_SCALE_RANGE = (0.7, 1.3)  # train_AuxAff.py: one scale per batch
SAL_BINARY_THRESHOLD = 0.5  # train_AuxAff.py: saliency pseudo label > 0.5 -> 1
LABEL_PAD = 0  # train_AuxAff.py pads the crop's labels with 0 (background), not 255
SESSION_NAME = "AuxSegNet_"  # train_AuxAff.py: the prefix of its output files


def training_outputs(save_path, session_name=SESSION_NAME):
    """train_AuxAff.py's files: the final weights, the training state (--resume) and the
    loss log, `<save_path>/<session_name>{final.pth,state.pth,log.json}`."""
    prefix = os.path.join(save_path, session_name)
    return {"final": prefix + "final.pth", "state": prefix + "state.pth",
            "log": prefix + "log.json"}


def epoch_batches(num_images, batch_size, epoch, seed=0, rank=0, world_size=1):
    """The batches of one epoch, for this rank: lists of (image index, scale, item seed).

    A seeded shuffle cut into num_images // batch_size full batches of `batch_size`
    (the global batch); each batch has one scale from [0.7, 1.3] and each image its
    own seed for flip and crop. Rank r takes images r, r + world_size, ... of every
    batch, so all ranks step together and see the same scales."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(num_images)
    batches = []
    for b in range(num_images // batch_size):
        scale = float(rng.uniform(*TRAIN_SCALE_RANGE))
        seeds = rng.integers(0, 2 ** 31, size=batch_size)
        members = range(b * batch_size, (b + 1) * batch_size)
        batches.append([(int(order[i]), scale, int(seeds[i - b * batch_size]))
                        for i in members][rank::world_size])
    return batches


@dataclass(frozen=True)
class AugmentDraws:
    """The per-image draws of train_AuxAff.py's augmentation (the batch draws the scale):
    the flip and the crop's (top, left) start in the scaled image, 0 along an axis that is
    not longer than the crop (the image then sits at the crop's top-left)."""
    flip: bool
    offsets: tuple


def draw_augment(rng, scaled_hw, crop_size):
    """AugmentDraws for an image of size scaled_hw = (H, W) after scaling."""
    flip = transforms.draw_flip(rng)
    return AugmentDraws(flip, transforms.draw_crop_offsets(scaled_hw, crop_size, rng,
                                                           pad_at="top_left"))


def augment(rgb, seg, sal, scale, rng, crop_size, label_pad=LABEL_PAD):
    """apply_augment with this image's draws from `rng` (draw_augment)."""
    width, height = transforms.truncated_scaled_wh(*rgb.shape[:2], scale)
    draws = draw_augment(rng, (height, width), crop_size)
    return apply_augment(rgb, seg, sal, scale, draws, crop_size, label_pad)


def apply_augment(rgb, seg, sal, scale, draws, crop_size, label_pad=LABEL_PAD):
    """train_AuxAff.py's augmentation of one image: resize by `scale` (image and saliency
    bilinear, label nearest), flip as drawn, normalise, crop_size crop at the drawn
    offsets with the image at the top-left of a zero-padded crop (segmentation label
    padded with `label_pad`, saliency with 0), saliency binarised."""
    img, seg = transforms.random_scale(rgb, scale, labels=(seg,))
    sal = transforms.random_scale(sal, scale)
    img, seg, sal = transforms.hflip_if(draws.flip, img, seg, sal)
    img, seg, sal = transforms.crop_at(normalize_image(img), crop_size, draws.offsets,
                                       labels=(seg, sal), label_pad=(label_pad, 0))
    sal = (sal > SAL_BINARY_THRESHOLD).astype(np.float32)
    return img, seg.astype(np.int64), sal


class BatchPlan(StepPlan):
    """Every batch of a run from global step `start` to `stop` (epochs of
    `epoch_batches` back to back), as a DataLoader `batch_sampler`: the position in the
    run is the global step alone, so a resumed run sees the batches it would have seen."""

    def __init__(self, num_images, batch_size, start, stop, seed=0, rank=0, world_size=1):
        if num_images < batch_size:
            raise ValueError(f"{num_images} images make no batch of {batch_size}")
        super().__init__(functools.partial(epoch_batches, num_images, batch_size, seed=seed,
                                           rank=rank, world_size=world_size),
                         num_images // batch_size, start, stop)


def total_iterations(max_step, max_iters=None):
    """How many iterations train_AuxAff runs: max_step + 1, as the released loop
    (`range(max_step + 1)`; the last one at the lr PolyOptimizer_cls froze at max_step),
    at most `max_iters` when given."""
    released = max_step + 1
    return released if max_iters is None else min(released, max_iters)


class AuxTrainDataset(Dataset):
    """Images with their segmentation and saliency pseudo labels. Items are addressed by
    the (index, scale, seed) tuples of `epoch_batches` (use them as a batch_sampler)."""

    def __init__(self, ids, img_dir, seg_dir, sal_dir, labels, labels_path, crop_size,
                 num_classes=NUM_CLASSES + 1, label_pad=LABEL_PAD):
        self.ids = list(ids)
        self.dirs = (img_dir, seg_dir, sal_dir)
        self.labels = labels_for_ids(self.ids, labels, labels_path)
        for img_id in self.ids:  # a missing file fails now, not hours into training
            find_image(img_dir, img_id)
            find_label(seg_dir, img_id)
            find_label(sal_dir, img_id)
        self.crop_size = crop_size
        self.num_classes = num_classes
        self.label_pad = label_pad

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, key):
        index, scale, seed = key
        sample = read_seg_sample(self.ids[index], *self.dirs, num_classes=self.num_classes)
        img, seg, sal = augment(sample["rgb"], sample["seg"], sample["sal"], scale,
                                np.random.default_rng(seed), self.crop_size, self.label_pad)
        return {"img": img, "seg": seg, "sal": sal, "label": self.labels[index]}


@dataclass(frozen=True)
class LossWeights:
    """train_AuxAff.py --cls_loss_weight, --sal_loss_weight, --seg_loss_weight (all 1)."""
    cls: float = 1.0
    sal: float = 1.0
    seg: float = 1.0


def training_loss(outputs, batch, weights=LossWeights()):
    """The five-term loss of train_AuxAff.py on the default forward's outputs, every
    dense prediction upsampled bilinearly to the crop. Returns (total, {term: value})."""
    x_cls, init_sal, refined_sal, init_seg, refined_seg = outputs
    size = batch["seg"].shape[-2:]
    up = lambda t: F.interpolate(t.float(), size=size, mode="bilinear", align_corners=False)
    sal = batch["sal"].unsqueeze(1)
    terms = {
        "cls": F.multilabel_soft_margin_loss(x_cls.float(), batch["label"]),
        "init_sal": F.binary_cross_entropy_with_logits(up(init_sal), sal),
        "refined_sal": F.binary_cross_entropy_with_logits(up(refined_sal), sal),
        "init_seg": F.cross_entropy(up(init_seg), batch["seg"], ignore_index=IGNORE_LABEL),
        "refined_seg": F.cross_entropy(up(refined_seg), batch["seg"], ignore_index=IGNORE_LABEL),
    }
    factor = {"cls": weights.cls, "init_sal": weights.sal, "refined_sal": weights.sal,
              "init_seg": weights.seg, "refined_seg": weights.seg}
    total = sum(factor[k] * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}


def to_device(batch, device):
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def make_optimizer(net, lr, wt_dec, max_step, momentum=None):
    """train_AuxAff.py's PolyOptimizer_cls: the trunk and cross_att at `lr`, parameters
    whose names contain seg/sal/fc8 at 10x; momentum None = the released quirk (wt_dec
    in the momentum slot, no weight decay)."""
    groups = [{"params": net.get_1x_lr_params(), "lr": lr},
              {"params": net.get_10x_lr_params(), "lr": 10 * lr}]
    return PolyOptimizer_cls(groups, lr=lr, weight_decay=wt_dec, max_step=max_step,
                             momentum=momentum)


def train_step(model, optimizer, scaler, batch, weights=LossWeights(), amp=False,
               iteration=None, precision=DEFAULT_PRECISION):
    """One SGD step (tool.core.train_step.sgd_step, forward at `precision` unless `amp`) on
    a collated batch already on the device; returns the loss terms and their weighted
    total as floats."""
    return sgd_step(model, optimizer, batch["img"], batch,
                    functools.partial(training_loss, weights=weights), scaler, amp, iteration,
                    precision)
