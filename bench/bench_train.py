"""One training step (forward, loss, backward, SGD update) of the full-width ResNet-38
classifier (psa train_cls.py) and of AuxSegNet (train_AuxAff.py) on a crop-321 batch of
1: fp32 as the originals against bf16 autocast (--precision bf16). A first step on a
small crop allocates the optimiser state and is not timed. The GPU section reuses these
steps (and the segmentation network's) with "amp": CUDA autocast fp16 + GradScaler, the
trainers' --amp."""
import contextlib

import torch
import torch.nn.functional as F

from common import recipe_net, timed
from network import deeplab_largefov, resnet38_cls
from network.AuxSegNet import SegNet
from tool.auxsegnet import training as auxsegnet
from tool.core.io import IGNORE_LABEL
from tool.core.optim import PolyOptimizer, PolyOptimizer_cls, psa_param_groups
from tool.core.precision import PRECISIONS

CROP = 321  # train_AuxAff.py's crop; the reference setting for both networks
BATCH = 1  # (the reference table used 2; 1 keeps make bench within 10 minutes)
WARMUP_CROP = 64
LR = 1e-5  # golden README §8: the recipe weights diverge at the released rates
WT_DEC = 5e-4
NUM_SEG_CLASSES = 21
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "amp": torch.float16}


def autocast(mode, device):
    """fp32: nothing; bf16: bfloat16 autocast; amp: float16 autocast (CUDA --amp)."""
    if mode == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[mode])


def grad_scaler(mode, device):
    return torch.amp.GradScaler(device.type, enabled=mode == "amp")


def random_batch(batch, crop, device, num_classes=20):
    gen = torch.Generator().manual_seed(0)
    data = {"img": torch.randn(batch, 3, crop, crop, generator=gen),
            "seg": torch.randint(0, NUM_SEG_CLASSES, (batch, crop, crop), generator=gen),
            "sal": (torch.rand(batch, crop, crop, generator=gen) < 0.3).float(),
            "label": (torch.rand(batch, num_classes, generator=gen) < 0.15).float()}
    return auxsegnet.to_device(data, device)


def sgd_step(optimizer, scaler, loss):
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return float(loss.detach())


def classifier(device, batch=BATCH):
    """psa train_cls.py's step: multilabel soft margin on the logits."""
    net = recipe_net(resnet38_cls.Net).to(device).train()
    groups = psa_param_groups(net.get_parameter_groups(), LR, WT_DEC)
    optimizer = PolyOptimizer(groups, LR, WT_DEC, max_step=100)

    def step(mode, crop, scaler):
        data = random_batch(batch, crop, device)
        with autocast(mode, device):
            logits = net(data["img"])
        loss = F.multilabel_soft_margin_loss(logits.float(), data["label"])
        return sgd_step(optimizer, scaler, loss)
    return step


def segnet(device, batch=BATCH):
    """train_AuxAff.py's step (tool.auxsegnet.training.train_step, whose autocast is the device's
    default: bfloat16 on the CPU, float16 on CUDA)."""
    net = recipe_net(SegNet).to(device).train()
    groups = [{"params": net.get_1x_lr_params(), "lr": LR},
              {"params": net.get_10x_lr_params(), "lr": 10 * LR}]
    optimizer = PolyOptimizer_cls(groups, LR, WT_DEC, max_step=100)

    def step(mode, crop, scaler):
        return auxsegnet.train_step(net, optimizer, scaler, random_batch(batch, crop, device),
                                    amp=mode != "fp32")["loss"]
    return step


def largefov(device, batch=BATCH):
    """train_seg.py's step for DeepLab-LargeFOV: cross-entropy of the upsampled logits."""
    net = recipe_net(deeplab_largefov.Net).to(device).train()
    optimizer = PolyOptimizer(psa_param_groups(net.get_parameter_groups(), LR, WT_DEC), LR,
                              WT_DEC, max_step=100)

    def step(mode, crop, scaler):
        data = random_batch(batch, crop, device)
        with autocast(mode, device):
            logits = net(data["img"])
        up = F.interpolate(logits.float(), size=(crop, crop), mode="bilinear",
                           align_corners=False)
        return sgd_step(optimizer, scaler,
                        F.cross_entropy(up, data["seg"], ignore_index=IGNORE_LABEL))
    return step


CPU_NETWORKS = {"ResNet-38 classifier": classifier, "AuxSegNet": segnet}
GPU_NETWORKS = {**CPU_NETWORKS, "DeepLab-LargeFOV": largefov}


def time_steps(make, modes, device, batch=BATCH, runs=3):
    """{mode: Timing of `runs` steps} of one network (built once), each mode after an
    untimed small-crop step; "amp" steps scale their loss (GradScaler)."""
    step = make(device, batch)
    timings = {}
    for mode in modes:
        scaler = grad_scaler(mode, device)
        step(mode, WARMUP_CROP, scaler)
        timings[mode] = timed(lambda: step(mode, CROP, scaler), runs=runs, warmup=0)[0]
    return timings


def run(quick=False):
    out = {"crop": CROP, "batch": BATCH}
    for name, make in CPU_NETWORKS.items():
        for precision, timing in time_steps(make, PRECISIONS, torch.device("cpu")).items():
            out[f"{name} {precision}"] = timing
    return out
