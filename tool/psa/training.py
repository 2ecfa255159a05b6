"""What the two psa trainers (train_cls.py, train_aff.py) share: the optimisation, output
and environment flags, and the epoch loop (PolyOptimizer over psa_param_groups, resume,
DistributedDataParallel, the shared training step, progress bar, a checkpoint and
training state every epoch)."""
import os

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from tool.core.checkpoint import (existing_training_state, load_training_state, save_checkpoint,
                                  save_training_state)
from tool.core.cli import (add_device_arg, nonnegative_float, nonnegative_int, positive_float,
                           positive_int, progress)
from tool.core.dist import is_main_process
from tool.core.io import InputError, check_output_file
from tool.core.optim import psa_optimizer
from tool.core.precision import add_precision_arg, check_resumed_precision
from tool.core.train_step import sgd_step
from tool.data.transforms import restart_worker_rng


def add_psa_data_args(parser):
    """The "data" group with --train_list and --voc12_root, as psa's trainers take them;
    returned for the stage's own data flags."""
    data = parser.add_argument_group("data")
    data.add_argument("--train_list", required=True, help="psa: voc12/train_aug.txt")
    data.add_argument("--voc12_root", required=True, help="folder holding JPEGImages/")
    return data


def add_trunk_args(group):
    """--width and --train_bn of the ResNet-38 trunk a psa trainer starts from."""
    group.add_argument("--width", type=positive_float, default=1.0,
                       help="channel multiplier (1.0 = paper)")
    group.add_argument("--train_bn", action="store_true",
                       help="update BatchNorm statistics from batches (for a trunk trained "
                            "from scratch; psa keeps them frozen at the ImageNet values)")


def add_psa_training_args(parser, batch_size, max_epoches, session_name):
    """The "optimisation", "output" and "environment" groups; only the defaults (which are
    also psa's values, shown in the help) differ between the two stages."""
    optim = parser.add_argument_group("optimisation (psa defaults)")
    optim.add_argument("--batch_size", type=positive_int, default=batch_size,
                       help=f"psa: {batch_size} (per process)")
    optim.add_argument("--max_epoches", type=positive_int, default=max_epoches,
                       help=f"psa: {max_epoches}")
    optim.add_argument("--lr", type=positive_float, default=0.1, help="psa: 0.1")
    optim.add_argument("--wt_dec", type=nonnegative_float, default=5e-4, help="psa: 5e-4")
    optim.add_argument("--momentum", type=nonnegative_float, default=None,
                       help="ordinary SGD momentum; default: psa's effective optimiser, whose "
                            "momentum is the wt_dec value (see README)")
    optim.add_argument("--max_iters", type=positive_int, default=None,
                       help="stop after this many steps (smoke runs)")
    out = parser.add_argument_group("output")
    out.add_argument("--session_name", default=session_name)
    out.add_argument("--save_dir", default=".")
    out.add_argument("--resume", action="store_true",
                     help="continue from <session_name>_state.pth (from the start of the "
                          "epoch it was saved after); when none is saved yet, start fresh")
    env = parser.add_argument_group("environment")
    add_device_arg(env)
    add_precision_arg(env)
    env.add_argument("--num_workers", type=nonnegative_int, default=2,
                     help="DataLoader processes")
    env.add_argument("--seed", type=int, default=0)


def weights_path(args):
    """<save_dir>/<session_name>.pth: the plain state dict the inference stage reads."""
    return os.path.join(args.save_dir, f"{args.session_name}.pth")


def state_path(args):
    """<save_dir>/<session_name>_state.pth: model + optimiser + epoch, what --resume reads."""
    return os.path.join(args.save_dir, f"{args.session_name}_state.pth")


def epoch_seed(seed, epoch, rank):
    """The torch seed every epoch starts from (dropout, the loader's worker seeds, the
    main-process augmentation): a function of (--seed, epoch, rank) alone, so a run resumed
    from an epoch's saved state trains that epoch exactly as an uninterrupted run."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def train_psa(net, loader, args, dist, loss_fn, stage_name):
    """Train `net` (already on dist.device) for args.max_epoches epochs of `loader`, which
    yields (inputs, targets) and has a DistributedSampler.

    loss_fn(outputs, targets) returns (loss, parts): the loss to minimise and a dict of
    named terms (may be empty) shown beside it on the progress bar; each step is
    tool.core.train_step.sgd_step at --precision (NonFiniteLoss when a term becomes NaN/inf).
    Saves the weights and the training state (with its precision) after every epoch on the
    main process; --resume continues from the saved epoch (InputError when it was saved at
    another --precision), --max_iters stops early. Returns (steps done, running losses by name:
    "loss" then the parts; empty when no step ran). InputError when the training list is
    shorter than one batch per process."""
    for path in (weights_path(args), state_path(args)):
        check_output_file(path, "--save_dir/--session_name")
    if len(loader) == 0:
        raise InputError(f"{args.train_list}: {len(loader.dataset)} images are fewer than one "
                         f"batch of {args.batch_size} per process")
    max_step = len(loader) * args.max_epoches
    optimizer = psa_optimizer(net, args.lr, args.wt_dec, max_step, args.momentum)
    start_epoch = 0
    if args.resume and existing_training_state(state_path(args), stage_name):
        saved = load_training_state(state_path(args), net, optimizer)
        check_resumed_precision(state_path(args), saved["extra"].get("precision"),
                                args.precision)
        start_epoch = saved["epoch"]
    model = DistributedDataParallel(net) if dist.distributed else net
    model.train()

    def stop(step):
        return bool(args.max_iters) and step >= args.max_iters

    step = optimizer.global_step
    running = {}
    for epoch in range(start_epoch, args.max_epoches):
        loader.sampler.set_epoch(epoch)
        torch.manual_seed(epoch_seed(args.seed, epoch, dist.rank))
        restart_worker_rng()
        bar = progress(loader, f"{stage_name} epoch {epoch + 1}/{args.max_epoches}",
                       disable=not is_main_process())
        for inputs, targets in bar:
            terms = sgd_step(model, optimizer, inputs.to(dist.device), targets.to(dist.device),
                             loss_fn, iteration=step + 1, precision=args.precision)
            step += 1
            for name, value in terms.items():
                running[name] = 0.9 * running.get(name, value) + 0.1 * value  # smoothed
            bar.set_postfix({k: f"{v:.4f}" for k, v in running.items()},
                            lr=f"{optimizer.param_groups[0]['lr']:.2e}")
            if stop(step):
                break
        if is_main_process():
            save_checkpoint(weights_path(args), net)
            save_training_state(state_path(args), net, optimizer, epoch + 1, step,
                                precision=args.precision)
        if stop(step):
            break
    return step, running
