"""AffinityNet training data (psa `train_aff.py` and `VOC12AffDataset`): the image with its
low- and high-alpha CRF score dicts, colour jitter, a random crop (the image zero-padded
before normalisation, as psa) and a flip applied to image and scores together, then
1/8-resolution labels and the bg-positive / fg-positive / negative labels of the radius-5
pairs; and psa's affinity loss."""
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from network.pairs import PAIR_RADIUS, get_indices_of_pairs
from network.resnet38d import normalize_image
from tool.core.io import IGNORE_LABEL, InputError, load_cam_dict, read_image
from tool.data.transforms import (JitterDraws, apply_jitter, crop_at, draw_crop_offsets, draw_flip,
                                  draw_jitter, hflip_if, worker_rng)
from tool.data.voc import find_image

CROP_SIZE = 448  # psa README: train_aff.py --crop_size 448
STRIDE = 8  # labels are average-pooled to the network's output stride
NO_SCORE = 1e-5  # psa: pixels whose best score is below this (crop padding) are ignored
LOSS_EPS = 1e-5  # psa: log(aff + eps), log(1 + eps - aff), counts + eps
BACKGROUND = 0


def crf_path(folder, img_id, which):
    path = os.path.join(folder, img_id + ".npy")
    if not os.path.isfile(path):
        raise InputError(f"{path}: {which} CRF score file not found")
    return path


def crf_scores(la_path, ha_path, shape):
    """The la and ha CRF dicts {0: bg, c+1: class c} of one image as (H, W, 2K) float32
    scores (la channels, then ha, both in ascending key order) and the keys (K,)."""
    la, ha = load_cam_dict(la_path), load_cam_dict(ha_path)
    keys = sorted(la)
    if sorted(ha) != keys:
        raise InputError(f"{ha_path}: keys {sorted(ha)} differ from the la CRF's {keys}")
    if BACKGROUND not in keys:
        raise InputError(f"{la_path}: CRF dict has no background key 0 (keys {keys})")
    for path, crf in ((la_path, la), (ha_path, ha)):
        bad = [k for k in keys if crf[k].shape != tuple(shape)]
        if bad:
            raise InputError(f"{path}: score map {bad[0]} is {crf[bad[0]].shape}, "
                             f"the image is {tuple(shape)}")
    scores = np.stack([la[k] for k in keys] + [ha[k] for k in keys], axis=-1)
    return scores.astype(np.float32), np.array(keys)


def block_mean(scores, stride=STRIDE):
    """(H, W, C) averaged over stride x stride blocks, zero-padded at the end (psa uses
    skimage block_reduce)."""
    h, w, c = scores.shape
    ph, pw = -(-h // stride) * stride, -(-w // stride) * stride
    padded = np.zeros((ph, pw, c), np.float32)
    padded[:h, :w] = scores
    return padded.reshape(ph // stride, stride, pw // stride, stride, c).mean(axis=(1, 3))


def crf_label(scores, keys, stride=STRIDE):
    """The 1/stride label map (uint8) from cropped (H, W, 2K) la+ha scores: the la class,
    255 where la says background, 0 where ha says background, 255 where no score."""
    pooled = block_mean(scores, stride)
    la, ha = np.split(pooled, 2, axis=-1)
    la_index, ha_index = la.argmax(axis=-1), ha.argmax(axis=-1)
    label = keys[la_index].astype(np.uint8)
    label[la_index == 0] = IGNORE_LABEL
    label[ha_index == 0] = BACKGROUND
    label[pooled.max(axis=-1) < NO_SCORE] = IGNORE_LABEL
    return label


def affinity_pair_labels(label, radius=PAIR_RADIUS):
    """(3, D, M) float32 bg-positive, fg-positive and negative labels of the pairs of
    `get_indices_of_pairs` on the label map (psa ExtractAffinityLabelInRadius)."""
    ind_from, ind_to = get_indices_of_pairs(radius, label.shape)
    flat = label.reshape(-1)
    lab_from = flat[ind_from][None]
    lab_to = flat[ind_to].reshape(-1, ind_from.size)
    valid = (lab_from != IGNORE_LABEL) & (lab_to != IGNORE_LABEL)
    same = lab_from == lab_to
    bg_pos = same & (lab_from == BACKGROUND)
    fg_pos = same & (lab_from != BACKGROUND) & valid
    neg = ~same & valid
    return np.stack([bg_pos, fg_pos, neg]).astype(np.float32)


def affinity_loss(aff, pair_labels):
    """psa's loss of (B, D, M) affinities: bg/4 + fg/4 + neg/2, each a label-weighted mean
    of -log(aff) (positives) or -log(1 - aff) (negatives) over the batch.
    Returns (loss, {"bg", "fg", "neg"} losses)."""
    bg, fg, neg = pair_labels.unbind(dim=1)
    pos_log = torch.log(aff + LOSS_EPS)
    neg_log = torch.log(1 + LOSS_EPS - aff)
    parts = {"bg": torch.sum(-bg * pos_log) / (bg.sum() + LOSS_EPS),
             "fg": torch.sum(-fg * pos_log) / (fg.sum() + LOSS_EPS),
             "neg": torch.sum(-neg * neg_log) / (neg.sum() + LOSS_EPS)}
    return parts["bg"] / 4 + parts["fg"] / 4 + parts["neg"] / 2, parts


@dataclass(frozen=True)
class JointDraws:
    """The draws of psa's train_aff augmentation of one image: colour jitter (None: none),
    the crop's (top, left) offsets (tool.data.transforms.crop_at) and the flip."""
    jitter: JitterDraws | None
    offsets: tuple
    flip: bool


def draw_joint_augment(rng, hw, crop_size):
    """JointDraws for an image of size hw = (H, W), in psa's order: jitter, crop, flip."""
    jitter = draw_jitter(rng)
    offsets = draw_crop_offsets(hw, crop_size, rng)
    return JointDraws(jitter, offsets, draw_flip(rng))


def joint_augment(rgb, scores, crop_size, rng):
    """apply_joint_augment with draws from `rng` (draw_joint_augment)."""
    draws = draw_joint_augment(rng, rgb.shape[:2], crop_size)
    return apply_joint_augment(rgb, scores, crop_size, draws)


def apply_joint_augment(rgb, scores, crop_size, draws):
    """psa's train_aff chain: jitter, crop image and (H, W, C) scores together (zero =
    black padding for the image, no score for the labels), flip both, normalise.
    Returns the (3, crop, crop) image and the (crop, crop, C) scores."""
    if draws.jitter is not None:
        rgb = apply_jitter(rgb, draws.jitter)
    raw = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
    raw, scores = crop_at(raw, crop_size, draws.offsets, labels=(scores,), label_pad=0)
    hwc, scores = hflip_if(draws.flip, raw.transpose(1, 2, 0), scores)
    return normalize_image(hwc), scores


class AffinityDataset(Dataset):
    """(image (3, crop, crop), pair labels (3, D, M)) per id, from the image and its la/ha
    CRF dicts `<id>.npy`."""

    def __init__(self, ids, img_dir, la_dir, ha_dir, crop_size=CROP_SIZE):
        self.ids = list(ids)
        self.dirs = (img_dir, la_dir, ha_dir)
        self.crop_size = crop_size

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, index):
        img_id = self.ids[index]
        img_dir, la_dir, ha_dir = self.dirs
        rgb = read_image(find_image(img_dir, img_id))
        scores, keys = crf_scores(crf_path(la_dir, img_id, "la"), crf_path(ha_dir, img_id, "ha"),
                                  rgb.shape[:2])
        image, scores = joint_augment(rgb, scores, self.crop_size, worker_rng())
        labels = affinity_pair_labels(crf_label(scores, keys))
        return torch.from_numpy(image), torch.from_numpy(labels)


def affinity_loader(dataset, batch_size, num_workers, seed=0, rank=0, world_size=1):
    """Shuffled, drop-last loader (psa); sharded under DDP. Call
    `loader.sampler.set_epoch(epoch)` for a new order each epoch."""
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                 seed=seed, drop_last=True)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      drop_last=True)
