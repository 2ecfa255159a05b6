"""Train the ResNet-38 multi-label classifier (psa `train_cls.py` recipe).

Saves `<save_dir>/<session_name>.pth` (plain state dict, what infer_cls.py reads) and
`<session_name>_state.pth` (model + optimiser + epoch, what --resume reads) after every
epoch. Runs under torchrun with DistributedDataParallel (one process per GPU)."""
import argparse
import os

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from network import resnet38_cls
from tool.checkpoint import load_training_state, load_weights, save_checkpoint, \
    save_training_state
from tool.cli import add_device_arg, progress, run_main
from tool.cls_data import CROP_SIZE, RESIZE_LONG, ClassifierAugment, classifier_loader
from tool.dist import cleanup, init_distributed, is_main_process
from tool.io import InputError
from tool.optim import PolyOptimizer, psa_param_groups
from tool.voc import load_cls_labels, read_image_list


def build_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--train_list", required=True, help="psa: voc12/train_aug.txt")
    data.add_argument("--voc12_root", required=True, help="folder holding JPEGImages/")
    data.add_argument("--cls_labels", default=None,
                      help="psa cls_labels.npy (default: <voc12_root>/cls_labels.npy)")
    data.add_argument("--crop_size", type=int, default=CROP_SIZE, help="psa: 448")
    data.add_argument("--resize_long", type=int, nargs=2, default=list(RESIZE_LONG),
                      help="psa: random long side in [256, 512]")
    model = p.add_argument_group("model")
    model.add_argument("--weights", default=None,
                       help="initial weights: ImageNet ResNet-38 (MXNet .params or .pth) or "
                            "a classifier checkpoint; none = random init")
    model.add_argument("--num_classes", type=int, default=resnet38_cls.NUM_CLASSES)
    model.add_argument("--width", type=float, default=1.0, help="channel multiplier (1.0 = paper)")
    model.add_argument("--train_bn", action="store_true",
                       help="update BatchNorm statistics from batches (for training from "
                            "scratch; the papers keep them frozen at the ImageNet values)")
    optim = p.add_argument_group("optimisation (psa defaults)")
    optim.add_argument("--batch_size", type=int, default=16, help="psa: 16 (per process)")
    optim.add_argument("--max_epoches", type=int, default=15, help="psa: 15")
    optim.add_argument("--lr", type=float, default=0.1, help="psa: 0.1")
    optim.add_argument("--wt_dec", type=float, default=5e-4, help="psa: 5e-4")
    optim.add_argument("--momentum", type=float, default=None,
                       help="ordinary SGD momentum; default: psa's effective optimiser, whose "
                            "momentum is the wt_dec value (see README)")
    optim.add_argument("--max_iters", type=int, default=None,
                       help="stop after this many steps (smoke runs)")
    out = p.add_argument_group("output")
    out.add_argument("--session_name", default="resnet38_cls")
    out.add_argument("--save_dir", default=".")
    out.add_argument("--resume", action="store_true",
                     help="continue from <session_name>_state.pth")
    env = p.add_argument_group("environment")
    add_device_arg(env)
    env.add_argument("--num_workers", type=int, default=2, help="DataLoader processes")
    env.add_argument("--seed", type=int, default=0)
    return p


def build_model(args):
    net = resnet38_cls.Net(num_classes=args.num_classes, width=args.width)
    net.freeze_batchnorm = not args.train_bn
    if args.weights:
        load_weights(net, args.weights, num_classes=args.num_classes, allow_missing=("fc8",))
    return net


def main(argv=None):
    args = build_parser().parse_args(argv)
    dist = init_distributed(args.device)
    torch.manual_seed(args.seed + dist.rank)
    labels_path = args.cls_labels or os.path.join(args.voc12_root, "cls_labels.npy")
    ids = read_image_list(args.train_list)
    labels = load_cls_labels(labels_path, args.num_classes)
    loader = classifier_loader(ids, os.path.join(args.voc12_root, "JPEGImages"), labels,
                               labels_path, args.batch_size, args.num_workers,
                               ClassifierAugment(args.crop_size, tuple(args.resize_long)),
                               args.seed, dist.rank, dist.world_size)
    if len(loader) == 0:
        raise InputError(f"{args.train_list}: {len(ids)} images are fewer than one batch of "
                         f"{args.batch_size} per process")
    net = build_model(args).to(dist.device)
    max_step = len(loader) * args.max_epoches
    optimizer = PolyOptimizer(psa_param_groups(net.get_parameter_groups(), args.lr, args.wt_dec),
                              lr=args.lr, weight_decay=args.wt_dec, max_step=max_step,
                              momentum=args.momentum)
    state_path = os.path.join(args.save_dir, f"{args.session_name}_state.pth")
    start_epoch = 0
    if args.resume and os.path.exists(state_path):
        start_epoch = load_training_state(state_path, net, optimizer)["epoch"]
    model = DistributedDataParallel(net) if dist.distributed else net
    model.train()

    step = optimizer.global_step
    for epoch in range(start_epoch, args.max_epoches):
        loader.sampler.set_epoch(epoch)
        bar = progress(loader, f"train_cls epoch {epoch + 1}/{args.max_epoches}",
                       disable=not is_main_process())
        running = 0.0
        for images, targets in bar:
            images, targets = images.to(dist.device), targets.to(dist.device)
            loss = F.multilabel_soft_margin_loss(model(images), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            running = 0.9 * running + 0.1 * loss.item() if step > 1 else loss.item()
            bar.set_postfix(loss=f"{running:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
            if args.max_iters and step >= args.max_iters:
                break
        if is_main_process():
            save_checkpoint(os.path.join(args.save_dir, f"{args.session_name}.pth"), net)
            save_training_state(state_path, net, optimizer, epoch + 1, step)
        if args.max_iters and step >= args.max_iters:
            break
    if is_main_process():
        print(f"train_cls: {step} steps, last loss {running:.4f}, saved "
              f"{os.path.join(args.save_dir, args.session_name + '.pth')}")
    cleanup()


if __name__ == "__main__":
    run_main(main)
