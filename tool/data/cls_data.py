"""The psa classifier's training data (random long-side resize, flip, colour jitter,
normalisation and a zero-padded random crop, batched by a torch DataLoader) and its loss."""
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from network.resnet38d import normalize_image
from tool.data.transforms import (JitterDraws, apply_jitter, crop_at, draw_crop_offsets, draw_flip,
                                  draw_jitter, draw_long_side, hflip_if, resize_long,
                                  resized_long_hw, worker_rng)
from tool.data.voc import VOCImageDataset

RESIZE_LONG = (256, 512)  # psa train_cls.py
CROP_SIZE = 448  # psa train_cls.py


@dataclass(frozen=True)
class ClassifierDraws:
    """The draws of psa's train_cls augmentation of one image: the long side, the flip,
    the colour jitter (None: none) and the crop's (top, left) offsets."""
    long_side: int
    flip: bool
    jitter: JitterDraws | None
    offsets: tuple


class ClassifierAugment:
    """uint8 RGB → normalised (3, crop, crop) float32 (psa's train_cls transform chain)."""

    def __init__(self, crop_size=CROP_SIZE, resize_long=RESIZE_LONG):
        self.crop_size = crop_size
        self.resize_long = resize_long

    def draw(self, rng, hw):
        """ClassifierDraws for an image of size hw = (H, W), in psa's order."""
        long_side = draw_long_side(rng, *self.resize_long)
        flip = draw_flip(rng)
        jitter = draw_jitter(rng)
        offsets = draw_crop_offsets(resized_long_hw(*hw, long_side), self.crop_size, rng)
        return ClassifierDraws(long_side, flip, jitter, offsets)

    def apply(self, rgb, draws):
        """Resize to the long side, flip, jitter, normalise, crop (zero padding)."""
        rgb = hflip_if(draws.flip, resize_long(rgb, draws.long_side))
        if draws.jitter is not None:
            rgb = apply_jitter(rgb, draws.jitter)
        return crop_at(normalize_image(rgb), self.crop_size, draws.offsets)

    def __call__(self, rgb):
        return self.apply(rgb, self.draw(worker_rng(), rgb.shape[:2]))


def collate_images_labels(batch):
    images = torch.from_numpy(np.stack([item[1] for item in batch]))
    labels = torch.from_numpy(np.stack([item[2] for item in batch]))
    return images, labels


def classifier_loader(ids, img_dir, labels, labels_path, batch_size, num_workers,
                      augment, seed=0, rank=0, world_size=1):
    """Shuffled, drop-last loader of (images, labels); sharded under DDP. Call
    `loader.sampler.set_epoch(epoch)` for a new order each epoch."""
    dataset = VOCImageDataset(ids, img_dir, labels, labels_path, transform=augment)
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                 seed=seed, drop_last=True)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_images_labels, drop_last=True,
                      persistent_workers=False)


def multilabel_loss(scores, targets):
    """psa train_cls.py's loss: multi-label soft margin of the logits; no separate terms."""
    return F.multilabel_soft_margin_loss(scores, targets), {}
