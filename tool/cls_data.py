"""The psa classifier's training data: random long-side resize, flip, colour jitter,
normalisation and a zero-padded random crop, batched by a torch DataLoader."""
import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from tool.transforms import color_jitter, normalize, random_crop, random_hflip, \
    random_resize_long, worker_rng
from tool.voc import VOCImageDataset

RESIZE_LONG = (256, 512)  # psa train_cls.py
CROP_SIZE = 448  # psa train_cls.py


class ClassifierAugment:
    """uint8 RGB → normalised (3, crop, crop) float32 (psa's train_cls transform chain)."""

    def __init__(self, crop_size=CROP_SIZE, resize_long=RESIZE_LONG):
        self.crop_size = crop_size
        self.resize_long = resize_long

    def __call__(self, rgb):
        rng = worker_rng()
        rgb = random_resize_long(rgb, *self.resize_long, rng)
        rgb = random_hflip(rng, rgb)
        rgb = color_jitter(rgb, rng)
        return random_crop(normalize(rgb), self.crop_size, rng)


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
