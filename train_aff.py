"""Train AffinityNet on the low/high-alpha CRF labels of the classifier's CAMs (psa
`train_aff.py` recipe).

Saves `<save_dir>/<session_name>.pth` (plain state dict, what infer_aff.py reads) and
`<session_name>_state.pth` (model + optimiser + epoch, what --resume reads) after every
epoch. Runs under torchrun with DistributedDataParallel (one process per GPU)."""
import argparse
import os

import torch
from torch.nn.parallel import DistributedDataParallel

from network import resnet38_aff
from tool.aff_labels import CROP_SIZE, AffinityDataset, affinity_loader, affinity_loss
from tool.checkpoint import load_training_state, load_weights, save_checkpoint, \
    save_training_state
from tool.cli import add_device_arg, progress, run_main
from tool.dist import cleanup, init_distributed, is_main_process
from tool.io import InputError
from tool.optim import PolyOptimizer, psa_param_groups
from tool.random_walk import PAIR_RADIUS
from tool.voc import read_image_list

MIN_CROP = 8 * (2 * PAIR_RADIUS - 2) + 1  # the pairs need a 9-wide feature map


def build_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--train_list", required=True, help="psa: voc12/train_aug.txt")
    data.add_argument("--voc12_root", required=True, help="folder holding JPEGImages/")
    data.add_argument("--la_crf_dir", required=True,
                      help="low-alpha CRF dicts of infer_cls.py --out_la_crf")
    data.add_argument("--ha_crf_dir", required=True,
                      help="high-alpha CRF dicts of infer_cls.py --out_ha_crf")
    data.add_argument("--crop_size", type=int, default=CROP_SIZE, help="psa README: 448")
    model = p.add_argument_group("model")
    model.add_argument("--weights", default=None,
                       help="initial weights, loaded non-strictly as psa: ImageNet ResNet-38 "
                            "(MXNet .params or .pth) or any ResNet-38 checkpoint; none = "
                            "random init")
    model.add_argument("--network", default="network.resnet38_aff",
                       help="accepted for psa compatibility; only network.resnet38_aff exists")
    model.add_argument("--width", type=float, default=1.0, help="channel multiplier (1.0 = paper)")
    model.add_argument("--train_bn", action="store_true",
                       help="update BatchNorm statistics from batches (for a trunk trained "
                            "from scratch; psa keeps them frozen at the ImageNet values)")
    optim = p.add_argument_group("optimisation (psa defaults)")
    optim.add_argument("--batch_size", type=int, default=8, help="psa: 8 (per process)")
    optim.add_argument("--max_epoches", type=int, default=8, help="psa: 8")
    optim.add_argument("--lr", type=float, default=0.1, help="psa: 0.1")
    optim.add_argument("--wt_dec", type=float, default=5e-4, help="psa: 5e-4")
    optim.add_argument("--momentum", type=float, default=None,
                       help="ordinary SGD momentum; default: psa's effective optimiser, whose "
                            "momentum is the wt_dec value (see README)")
    optim.add_argument("--max_iters", type=int, default=None,
                       help="stop after this many steps (smoke runs)")
    out = p.add_argument_group("output")
    out.add_argument("--session_name", default="resnet38_aff")
    out.add_argument("--save_dir", default=".")
    out.add_argument("--resume", action="store_true",
                     help="continue from <session_name>_state.pth")
    env = p.add_argument_group("environment")
    add_device_arg(env)
    env.add_argument("--num_workers", type=int, default=2, help="DataLoader processes")
    env.add_argument("--seed", type=int, default=0)
    return p


def build_model(args):
    net = resnet38_aff.Net(width=args.width)
    net.freeze_batchnorm = not args.train_bn
    if args.weights:
        load_weights(net, args.weights, strict=False)
    return net


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.crop_size < MIN_CROP:
        parser.error(f"--crop_size must be at least {MIN_CROP} (radius-{PAIR_RADIUS} pairs)")
    dist = init_distributed(args.device)
    torch.manual_seed(args.seed + dist.rank)
    ids = read_image_list(args.train_list)
    dataset = AffinityDataset(ids, os.path.join(args.voc12_root, "JPEGImages"),
                              args.la_crf_dir, args.ha_crf_dir, args.crop_size)
    loader = affinity_loader(dataset, args.batch_size, args.num_workers, args.seed, dist.rank,
                             dist.world_size)
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
    running = {}
    for epoch in range(start_epoch, args.max_epoches):
        loader.sampler.set_epoch(epoch)
        bar = progress(loader, f"train_aff epoch {epoch + 1}/{args.max_epoches}",
                       disable=not is_main_process())
        for images, pair_labels in bar:
            aff = model(images.to(dist.device))
            loss, parts = affinity_loss(aff, pair_labels.to(dist.device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            for name, value in (("loss", loss), *parts.items()):
                running[name] = 0.9 * running.get(name, value.item()) + 0.1 * value.item()
            bar.set_postfix({k: f"{v:.4f}" for k, v in running.items()},
                            lr=f"{optimizer.param_groups[0]['lr']:.2e}")
            if args.max_iters and step >= args.max_iters:
                break
        if is_main_process():
            save_checkpoint(os.path.join(args.save_dir, f"{args.session_name}.pth"), net)
            save_training_state(state_path, net, optimizer, epoch + 1, step)
        if args.max_iters and step >= args.max_iters:
            break
    if is_main_process():
        losses = ", ".join(f"{k} {v:.4f}" for k, v in running.items())
        print(f"train_aff: {step} steps ({losses}), saved "
              f"{os.path.join(args.save_dir, args.session_name + '.pth')}")
    cleanup()


if __name__ == "__main__":
    run_main(main)
