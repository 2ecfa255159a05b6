"""Train AuxSegNet (Xu et al., ICCV 2021) on segmentation and saliency pseudo labels.

Released recipe (train_AuxAff.py defaults): batch 4, crop 321, one random scale in
[0.7, 1.3] per batch, flip p 0.5, crop zero-padded at the bottom/right (padded labels
are 0), saliency binarised at 0.5; loss = cls + init/refined saliency BCE + init/refined
segmentation CE; PolyOptimizer_cls (lr 7e-4, 10x for seg/sal/fc8 parameters, wt_dec
1e-5 landing in SGD's momentum slot, power 0.9) over 15 epochs of train_aug, plus the
released loop's one extra iteration at the frozen lr (max_step + 1 in all); frozen
BatchNorm; initialised non-strictly from the ResNet-38 classifier.

    python train_AuxAff.py --img_path VOC2012/JPEGImages --seg_pgt_path pgt/seg \\
        --sal_pgt_path pgt/sal --init_weights res38_cls.pth --save_path aux_round1

Multi-GPU: torchrun --nproc_per_node N train_AuxAff.py ... (--batch_size stays the
global batch). Writes <save_path>/<session_name>final.pth, a training state after every
epoch (<session_name>state.pth, for --resume) and the loss log (<session_name>log.json).
"""
import os
import time

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from network.AuxSegNet import SegNet
from tool.auxsegnet import training
from tool.auxsegnet.pgt import add_pseudo_label_args
from tool.core import checkpoint, dist
from tool.core.cli import (add_device_arg, add_network_arg, nonnegative_float, nonnegative_int,
                           positive_float, positive_int, progress, run_main, script_parser)
from tool.core.io import InputError, check_output_folder, json_line, save_json
from tool.core.precision import add_precision_arg, check_resumed_precision, reject_amp_with_bf16
from tool.data.classes import labelled_images
from tool.data.voc import read_image_list


def build_parser():
    p = script_parser(__doc__, first_paragraph=True)
    data = p.add_argument_group("data")
    data.add_argument("--img_path", required=True, help="training images <id>.jpg")
    add_pseudo_label_args(data, written=False)
    data.add_argument("--num_workers", type=nonnegative_int, default=4,
                      help="DataLoader worker processes (released: 16); 0 loads inline")
    model = p.add_argument_group("model")
    model.add_argument("--init_weights",
                       help="initial weights, loaded non-strictly (released: the ResNet-38 "
                            "classifier of psa; later rounds: the previous round's AuxSegNet)")
    add_network_arg(model, "AuxSegNet")
    model.add_argument("--width", type=positive_float, default=1.0,
                       help="channel width multiplier (1.0 = paper; e.g. 0.125 on a CPU)")
    optim = p.add_argument_group("optimisation (released train_AuxAff.py defaults)")
    optim.add_argument("--batch_size", type=positive_int, default=4, help="global batch (released: 4)")
    optim.add_argument("--crop_size", type=positive_int, default=321, help="released: 321")
    optim.add_argument("--seg_pad_label", type=int, default=training.LABEL_PAD,
                       help="segmentation label of the crop's padding: released 0 (trains "
                            "the zero padding as background); 255 ignores it")
    optim.add_argument("--num_epochs", type=positive_int, default=15,
                       help="released: 15 (the paper: 15 first round, 10 later rounds)")
    optim.add_argument("--lr", type=positive_float, default=7e-4,
                       help="backbone and cross_att lr; seg/sal/fc8 get 10x (released 7e-4, "
                            "paper 1e-3)")
    optim.add_argument("--wt_dec", type=nonnegative_float, default=1e-5, help="released: 1e-5")
    optim.add_argument("--momentum", type=nonnegative_float, default=None,
                       help="SGD momentum with --wt_dec as real weight decay; default: the "
                            "released quirk (momentum = wt_dec, no weight decay)")
    optim.add_argument("--cls_loss_weight", type=nonnegative_float, default=1.0, help="released: 1")
    optim.add_argument("--sal_loss_weight", type=nonnegative_float, default=1.0,
                       help="weight of both saliency terms (released: 1)")
    optim.add_argument("--seg_loss_weight", type=nonnegative_float, default=1.0,
                       help="weight of both segmentation terms (released: 1)")
    optim.add_argument("--max_iters", type=positive_int, default=None,
                       help="stop after this many iterations (smoke runs; the lr schedule "
                            "still spans --num_epochs)")
    optim.add_argument("--amp", action="store_true",
                       help="mixed precision on CUDA (ignored on CPU); the released code "
                            "trains in fp32; not with --precision bf16")
    add_precision_arg(optim)
    optim.add_argument("--seed", type=int, default=0, help="shuffles, scales, flips, crops")
    out = p.add_argument_group("output")
    out.add_argument("--save_path", required=True, help="output folder")
    out.add_argument("--session_name", default=training.SESSION_NAME,
                     help="file name prefix (released)")
    checkpoint.add_resume_arg(out, "the one in --save_path")
    out.add_argument("--print_intervals", type=positive_int, default=50,
                     help="iterations between loss lines (released: 50)")
    add_device_arg(out, gpu_id=True)
    return p


def output_paths(args):
    return training.training_outputs(args.save_path, args.session_name)


def make_dataset(args):
    """The training dataset over the listed images with a labelled class (make_pgt.py and
    gen_pgt.py write no pseudo labels for the others), and the `labelled_images` record."""
    for flag in ("img_path", "seg_pgt_path", "sal_pgt_path"):
        if not os.path.isdir(getattr(args, flag)):
            raise InputError(f"{getattr(args, flag)}: --{flag} folder not found")
    data = labelled_images(args, read_image_list(args.list_path), args.cls_labels)
    dataset = training.AuxTrainDataset(data.ids, args.img_path, args.seg_pgt_path,
                                        args.sal_pgt_path, data.labels, args.cls_labels,
                                        args.crop_size, data.num_classes + 1, args.seg_pad_label)
    return dataset, data


def make_loader(dataset, args, info, start, stop):
    if args.batch_size % info.world_size:
        raise InputError(f"--batch_size {args.batch_size}: not divisible by the "
                         f"{info.world_size} processes")
    if len(dataset) < args.batch_size:
        raise InputError(f"{args.list_path}: {len(dataset)} images, fewer than one batch "
                         f"of {args.batch_size}")
    plan = training.BatchPlan(len(dataset), args.batch_size, start, stop, args.seed,
                               info.rank, info.world_size)
    # its own generator: the loader leaves the global RNG (dropout) alone, so a resumed
    # run continues exactly as an uninterrupted one
    return DataLoader(dataset, batch_sampler=plan, num_workers=args.num_workers,
                      pin_memory=info.device.type == "cuda", generator=torch.Generator())


def log_record(step, max_step, optimizer, terms, images, seconds):
    return {"iter": step, "max_step": max_step, "lr": optimizer.param_groups[0]["lr"],
            "imgs_per_s": round(images / seconds, 2), **{k: round(v, 5) for k, v in terms.items()}}


def train(model, net, optimizer, scaler, loader, args, info, state):
    """The training loop from state["step"]; state["log"] gets the loss lines. Saves the
    training state after every epoch and at the last step. Returns the last loss terms."""
    paths, amp = output_paths(args), args.amp and info.device.type == "cuda"
    weights = training.LossWeights(args.cls_loss_weight, args.sal_loss_weight,
                                    args.seg_loss_weight)
    main_proc = dist.is_main_process()
    per_epoch, stop = loader.batch_sampler.per_epoch, loader.batch_sampler.stop
    max_step = per_epoch * args.num_epochs
    began, start, step, terms = time.perf_counter(), state["step"], state["step"], {}
    bar = progress(loader, "train_AuxAff", disable=not main_proc)
    for batch in bar:
        terms = training.train_step(model, optimizer, scaler,
                                     training.to_device(batch, info.device), weights, amp,
                                     iteration=step + 1, precision=args.precision)
        step += 1
        bar.set_postfix(loss=f"{terms['loss']:.4f}")
        if main_proc and (step % args.print_intervals == 0 or step == stop):
            state["log"].append(log_record(step, max_step, optimizer, terms,
                                           (step - start) * args.batch_size,
                                           time.perf_counter() - began))
            bar.write(json_line(state["log"][-1]))
        if main_proc and (step % per_epoch == 0 or step == stop):
            checkpoint.save_training_state(
                paths["state"], net, optimizer, step // per_epoch, step,
                scaler=scaler.state_dict(), log=state["log"], rng=torch.get_rng_state(),
                precision=args.precision)
            save_json(paths["log"], state["log"])
    return terms


def resume_path(args):
    """The training state --resume continues from, or None for a fresh start (no --resume,
    or none saved yet: said on stdout)."""
    return checkpoint.requested_training_state(args.resume, output_paths(args)["state"],
                                               "train_AuxAff")


def resume_state(path, net, optimizer, scaler, precision):
    """{'step', 'log'}: from the training state at `path` (InputError when it was saved at
    another --precision), else a fresh start."""
    if path is None:
        return {"step": 0, "log": []}
    saved = checkpoint.load_training_state(path, net, optimizer)
    check_resumed_precision(path, saved["extra"].get("precision"), precision)
    scaler.load_state_dict(saved["extra"]["scaler"])
    torch.set_rng_state(saved["extra"]["rng"])
    return {"step": saved["step"], "log": saved["extra"]["log"]}


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    reject_amp_with_bf16(parser, args.amp, args.precision)
    check_output_folder(args.save_path, "--save_path")
    info = dist.init_distributed(args.device, args.gpu_id)
    torch.manual_seed(args.seed + info.rank)
    dataset, data = make_dataset(args)
    max_step = len(dataset) // args.batch_size * args.num_epochs
    net = SegNet(num_classes=dataset.num_classes, width=args.width)
    resume = resume_path(args)
    if args.init_weights and resume is None:
        checkpoint.load_weights(net, args.init_weights, strict=False,
                                num_classes=dataset.num_classes)
    elif resume is None:
        print("train_AuxAff: no --init_weights, training from a random initialisation")
    net.to(info.device).train()
    optimizer = training.make_optimizer(net, args.lr, args.wt_dec, max_step, args.momentum)
    scaler = torch.amp.GradScaler(info.device.type,
                                  enabled=args.amp and info.device.type == "cuda")
    state = resume_state(resume, net, optimizer, scaler, args.precision)
    stop = training.total_iterations(max_step, args.max_iters)
    loader = make_loader(dataset, args, info, state["step"], stop)
    model = DistributedDataParallel(net) if info.distributed else net
    terms = train(model, net, optimizer, scaler, loader, args, info, state)
    final = output_paths(args)["final"]
    if dist.is_main_process():
        checkpoint.save_checkpoint(final, net)
        print(f"train_AuxAff: {stop} iterations (max_step {max_step}), last loss "
              f"{terms.get('loss', float('nan')):.4f}; weights in {final} ({len(dataset)} "
              f"images, {data.skipped})")
    dist.cleanup()
    return final


if __name__ == "__main__":
    run_main(main)
