"""The final segmentation network's training (train_seg.py, DeepLab-v2 recipe): the
augmentation, the loss, the initial weights, the step-planned loader and --resume."""
import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from network.resnet38d import normalize_image
from tool.core import checkpoint
from tool.core.batch_plan import SeededItems, StepPlan, seeded_epoch_batches
from tool.core.io import IGNORE_LABEL, InputError
from tool.core.precision import DEFAULT_PRECISION, check_resumed_precision
from tool.data import transforms
from tool.data.voc import VOCSegDataset


class SegTrainTransform:
    """Sample dict (rgb, seg) and the item's Generator → (normalised (3, crop, crop)
    float32, (crop, crop) int64): a random scale (image bilinear, label nearest), a flip
    and a crop (zero image padding, label padding 255)."""

    def __init__(self, crop_size, scale_range):
        self.crop_size = crop_size
        self.scale_range = tuple(scale_range)

    def __call__(self, sample, rng):
        scale = rng.uniform(*self.scale_range)
        image, seg = transforms.random_scale(sample["rgb"], scale, labels=(sample["seg"],))
        image, seg = transforms.random_hflip(rng, image, seg)
        image, seg = transforms.random_crop(normalize_image(image), self.crop_size, rng,
                                            labels=(seg,), label_pad=IGNORE_LABEL)
        return torch.from_numpy(image), torch.from_numpy(seg.astype(np.int64))


def seg_loss(logits, target):
    """Cross-entropy (ignore 255) of logits upsampled bilinearly to the label size."""
    logits = F.interpolate(logits.float(), size=target.shape[-2:], mode="bilinear",
                           align_corners=False)
    return F.cross_entropy(logits, target, ignore_index=IGNORE_LABEL)


def seg_loss_terms(logits, target):
    """seg_loss as the (loss, named terms) pair tool.core.train_step.sgd_step takes (no terms)."""
    return seg_loss(logits, target), {}


def load_init_weights(net, path):
    """Non-strict load of .pth / .params weights (one report line): keys the network lacks
    (fc8, fc) are skipped; only the head may stay at its initialisation."""
    missing, _ = checkpoint.load_weights(net, path, strict=False)
    head = {name for name, module in net.named_children() if module in net.from_scratch_layers}
    backbone_missing = [k for k in missing if k.split(".")[0] not in head]
    if backbone_missing:
        raise InputError(f"{path}: backbone weights missing for the {type(net).__module__} "
                         f"network: {checkpoint.summarise_keys(backbone_missing)}")


def seg_train_dataset(ids, img_dir, label_dir, num_classes, crop_size, scale_range):
    """The training images with their label maps (values 0..num_classes-1, 255), each item
    augmented with its own seeded Generator (tool.core.batch_plan.SeededItems)."""
    dataset = VOCSegDataset(ids, img_dir, label_dir, num_classes=num_classes)
    return SeededItems(dataset, SegTrainTransform(crop_size, scale_range))


def seg_train_loader(dataset, batch_size, seed, info, start, stop, num_workers, list_path):
    """Batches of steps start..stop planned by step (tool.core.batch_plan): a resumed run
    sees the batches of an uninterrupted one. Its own generator leaves the global RNG
    (dropout) to the training."""
    if len(dataset) < batch_size * info.world_size:
        raise InputError(f"{list_path}: {len(dataset)} images, fewer than one batch "
                         f"({batch_size} x {info.world_size} processes)")
    epoch = functools.partial(seeded_epoch_batches, len(dataset), batch_size, seed=seed,
                              rank=info.rank, world_size=info.world_size)
    plan = StepPlan(epoch, len(dataset) // (batch_size * info.world_size), start, stop)
    return DataLoader(dataset, batch_sampler=plan, num_workers=num_workers,
                      pin_memory=info.device.type == "cuda", generator=torch.Generator())


def resume_training(path, net, optimizer, scaler, precision=DEFAULT_PRECISION):
    """Restore a training state (weights, optimizer, the global RNG of dropout); returns
    the iteration to continue from. The AMP scale is kept only when both runs use AMP;
    InputError when the state was saved at another --precision."""
    state = checkpoint.load_training_state(path, net, optimizer)
    check_resumed_precision(path, state["extra"].get("precision"), precision)
    saved_scaler = state["extra"].get("scaler")
    if scaler.is_enabled() and saved_scaler:
        scaler.load_state_dict(saved_scaler)
    if "rng" in state["extra"]:
        torch.set_rng_state(state["extra"]["rng"])
    return state["step"]
