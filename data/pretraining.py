"""The demo's stand-in for ImageNet: a procedurally generated single-label classification
set (many classes of part-based objects drawn with data/scenes.py, none of them a demo
class) and the supervised pretraining of the small ResNet-38 trunk on it.

The papers start every network from ImageNet ResNet-38 weights with BatchNorm frozen at
ImageNet statistics; `data/pretrain_backbone.py` makes the demo's equivalent with these
functions, and the demo starts from the weights file it wrote (shipped in data/)."""
import hashlib
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from data.make_demo_dataset import BODY_SHAPES, DEMO_CLASSES
from data.scenes import (SCENES, TEXTURES, UNIT_SHAPES, Look, PartSpec, Pose, draw_parts, finish,
                         paint_parts, scene_background)
from network import resnet38d

HEAD_SHAPES = tuple(s for s in UNIT_SHAPES if s != "bar")
HUE_STEP = 30.0                 # class hues are multiples of this
BODY_LOOK_PROB = 0.8            # P(an object wears its class's body look)
HEAD_SIZE = (0.45, 0.65)        # x the body radius
BODY_RADIUS = (0.14, 0.3)       # x the image side
DISTRACTORS = (0, 3)
DISTRACTOR_ALPHA = (0.25, 0.6)


class PretrainClass(NamedTuple):
    head_shape: str
    head: Look
    body_shape: str
    body: Look
    limbs: int


def demo_heads():
    """(shape, texture, hue) of every demo class's discriminative part."""
    return {(c.head_shape, c.head.texture, c.head.hue % 360) for c in DEMO_CLASSES.values()}


def pretrain_classes(num_classes, seed):
    """`num_classes` distinct classes: each a head (shape, texture, hue) with a body look,
    body shape and limb count; no head equals a demo class's head, so the pretraining
    classes are not the demo's classes (as ImageNet's classes are not VOC's labels)."""
    rng = np.random.default_rng([seed, 7919])
    forbidden = demo_heads()
    hues = np.arange(0.0, 360.0, HUE_STEP)
    classes, seen = [], set()
    while len(classes) < num_classes:
        head = (str(rng.choice(HEAD_SHAPES)), str(rng.choice(TEXTURES)), float(rng.choice(hues)))
        if head in forbidden or head in seen:
            continue
        seen.add(head)
        body = Look(float(rng.choice(hues)), str(rng.choice(TEXTURES)), (0.35, 0.8), (0.5, 0.9))
        classes.append(PretrainClass(head[0], Look(head[2], head[1]), str(rng.choice(BODY_SHAPES)),
                                     body, int(rng.integers(0, 3))))
    return classes


def class_parts(cls, rng):
    """Body, limbs and head of one object of pretraining class `cls`."""
    body_look = cls.body if rng.random() < BODY_LOOK_PROB else \
        Look(rng.uniform(0, 360), str(rng.choice(TEXTURES)), (0.35, 0.8), (0.5, 0.9))
    parts = [PartSpec(cls.body_shape, body_look, 1.0, 0.0, 0.0)]
    head_angle = rng.uniform(0, 2 * np.pi)
    for k in range(cls.limbs):
        parts.append(PartSpec("bar", body_look, rng.uniform(0.5, 0.75),
                              head_angle + np.pi + (k - (cls.limbs - 1) / 2) * 1.1,
                              rng.uniform(0.85, 1.05)))
    parts.append(PartSpec(cls.head_shape, cls.head, rng.uniform(*HEAD_SIZE), head_angle,
                          rng.uniform(0.95, 1.15)))
    return parts


def render_pretrain_image(cls, size, rng):
    """One (size, size, 3) uint8 picture of an object of class `cls` on a random scene
    with faint clutter."""
    image = scene_background(str(rng.choice(SCENES)), size, size, rng)
    for _ in range(rng.integers(DISTRACTORS[0], DISTRACTORS[1] + 1)):
        pose = Pose(rng.uniform(0, size), rng.uniform(0, size), size * rng.uniform(0.06, 0.14),
                    rng.uniform(0.7, 1.4), rng.uniform(0, 2 * np.pi))
        parts = [PartSpec(str(rng.choice(BODY_SHAPES)),
                          Look(rng.uniform(0, 360), str(rng.choice(TEXTURES))), 1.0, 0.0, 0.0)]
        drawn = draw_parts(parts, pose, size, size, rng)
        alpha = rng.uniform(*DISTRACTOR_ALPHA)
        image = paint_parts(image, parts, drawn._replace(
            coverages=[c * alpha for c in drawn.coverages]), rng)
    radius = size * rng.uniform(*BODY_RADIUS)
    margin = 0.9 * radius
    pose = Pose(rng.uniform(margin, size - margin), rng.uniform(margin, size - margin), radius,
                rng.uniform(0.7, 1.4), rng.uniform(0, 2 * np.pi))
    parts = class_parts(cls, rng)
    image = paint_parts(image, parts, draw_parts(parts, pose, size, size, rng), rng)
    return finish(image, rng)


def render_item(item):
    """(class index, image) for item = (classes, class index, size, seed tuple); module
    level so a process pool can run it."""
    classes, index, size, seed = item
    return index, render_pretrain_image(classes[index], size, np.random.default_rng(seed))


def set_items(classes, per_class, size, seed, split):
    """Work items of one split: per_class images of every class, each with its own seed."""
    tag = {"train": 1, "val": 2}[split]
    return [(classes, c, size, (seed, tag, c, k)) for k in range(per_class)
            for c in range(len(classes))]


# ----------------------------------------------------------------- training

class PretrainNet(nn.Module):
    """The ResNet-38 trunk with every layer and BatchNorm trainable (as for ImageNet
    training), global average pooling and a linear classifier."""

    def __init__(self, num_classes, width):
        super().__init__()
        self.trunk = resnet38d.Net(width=width, frozen=())
        self.trunk.freeze_batchnorm = False
        self.trunk.requires_grad_(True)
        self.fc = nn.Linear(self.trunk.channels["conv6"], num_classes)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.trunk(x), 1).flatten(1))


def to_input(images):
    """uint8 (B, H, W, 3) numpy → normalised (B, 3, H, W) float tensor."""
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0
    mean = torch.tensor(resnet38d.IMAGE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(resnet38d.IMAGE_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def augment_batch(images, rng, pad):
    """Random translation (zero-padded crop of the same size) and horizontal flip."""
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.empty_like(images)
    for i in range(n):
        y, x = rng.integers(0, 2 * pad + 1, size=2)
        crop = padded[i, y:y + h, x:x + w]
        out[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return out


def parameter_groups(net, weight_decay):
    """Weight decay on convolution and linear weights, none on BatchNorm and biases."""
    decay, no_decay = [], []
    for name, param in net.named_parameters():
        (decay if param.ndim > 1 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def cosine_lr(base_lr, step, total, warmup):
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * base_lr * (1 + np.cos(np.pi * progress))


@torch.no_grad()
def accuracy(net, images, labels, batch_size=256):
    net.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = net(to_input(images[start:start + batch_size]))
        correct += int((logits.argmax(1).numpy() == labels[start:start + batch_size]).sum())
    net.train()
    return 100.0 * correct / len(images)


def train_epoch(net, optimizer, images, labels, epoch, settings, step, total, bar):
    """One epoch of shuffled mini-batches; returns (next step, mean loss)."""
    rng = np.random.default_rng([settings["seed"], 31, epoch])
    order = rng.permutation(len(images))
    batch = settings["batch_size"]
    losses = []
    for start in range(0, len(order) - batch + 1, batch):
        idx = order[start:start + batch]
        lr = cosine_lr(settings["lr"], step, total, settings["warmup_steps"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = to_input(augment_batch(images[idx], rng, settings["pad"]))
        loss = F.cross_entropy(net(x), torch.from_numpy(labels[idx]),
                               label_smoothing=settings["label_smoothing"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        step += 1
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", lr=f"{lr:.3f}")
        bar.update(1)
    return step, float(np.mean(losses))


def trunk_state_fp16(net):
    """The trunk's state dict (resnet38d keys) with floating tensors stored as float16;
    loading into a float32 network converts them back."""
    return {k: (v.detach().half() if v.is_floating_point() else v.detach()).clone()
            for k, v in net.trunk.state_dict().items()}


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
