"""Train the final segmentation network on pixel labels: psa's ResNet-38 LargeFOV-style
model (`--model largefov`, psa's 61.7 val) or DeepLab-v2 on ResNet-101
(`--model deeplabv2`, InferCam's 70.8 val). Labels are any folder of palette/grey PNGs
(values 0..C-1, 255 ignored): random-walk labels (infer_aff.py), AuxSegNet pseudo labels,
or ground truth.

Recipe (DeepLab-v2 defaults): per image a random scale in [0.5, 1.5] (image bilinear,
label nearest), horizontal flip, normalisation, random crop (zero image padding, label
padding 255); SGD momentum 0.9, weight decay 5e-4, poly lr (power 0.9) over `--max_iters`,
head weights/biases at 10x/20x the base lr; cross-entropy (ignore 255) of the logits
upsampled bilinearly to the crop. Runs under torchrun (DDP) and with AMP on CUDA.

Example:
  python train_seg.py --model deeplabv2 --train_list voc12/train_aug.txt \
      --voc12_root VOC2012 --label_dir out_rw --init_weights resnet101_imagenet.pth \
      --save_path seg_deeplabv2.pth
"""
import argparse
import os

import torch
from torch.nn.parallel import DistributedDataParallel

from network.seg_models import MODELS, build_model
from tool.core import checkpoint, dist
from tool.core.cli import (add_device_arg, nonnegative_float, nonnegative_int, ordered_pair,
                           positive_float, positive_int, progress, run_main, script_parser)
from tool.core.io import InputError, check_output_file, json_line
from tool.core.optim import psa_optimizer
from tool.core.precision import add_precision_arg, reject_amp_with_bf16
from tool.core.train_step import sgd_step
from tool.data.classes import (add_class_args, add_optional_labels_arg, labelled_images,
                               optional_labels_path)
from tool.data.voc import read_image_list, voc_dirs
from tool.seg.training import (load_init_weights, resume_training, seg_loss_terms,
                               seg_train_dataset, seg_train_loader)

STATE_SUFFIX = ".state"  # training state for --resume is written beside --save_path

def build_parser():
    p = script_parser(__doc__, first_paragraph=True)
    data = p.add_argument_group("data")
    data.add_argument("--train_list", required=True,
                      help="image ids, bare or psa '/JPEGImages/x.jpg /Seg.../x.png' lines")
    data.add_argument("--voc12_root", help="VOC2012 folder; images from its JPEGImages")
    data.add_argument("--img_dir", help="image folder (overrides --voc12_root)")
    data.add_argument("--label_dir", required=True,
                      help="label PNGs <id>.png: random-walk, AuxSegNet or ground-truth labels")
    add_optional_labels_arg(data, "no pseudo labels are made for them",
                            also_for=" (and the class count)")
    add_class_args(data, with_background=True, found_in="the image labels when there are any")
    data.add_argument("--num_workers", type=nonnegative_int, default=2,
                      help="DataLoader processes; 0 loads in the main process (same batches)")
    model = p.add_argument_group("model")
    model.add_argument("--model", choices=sorted(MODELS), default="deeplabv2",
                       help="largefov: ResNet-38 + dilated 3x3 head (psa); deeplabv2: "
                            "ResNet-101 + ASPP 6/12/18/24 (InferCam)")
    model.add_argument("--width", type=positive_float, default=1.0,
                       help="channel width multiplier (1.0 = paper; smaller for CPU runs)")
    model.add_argument("--freeze_bn", action=argparse.BooleanOptionalAction, default=True,
                       help="keep BatchNorm statistics and affine parameters fixed "
                            "(DeepLab-v2 and psa: batches are too small to train BN)")
    model.add_argument("--init_weights",
                       help="initial weights, non-strict: .pth (resnet38_cls, ImageNet "
                            "ResNet-101 in torchvision layout) or MXNet .params (ImageNet "
                            "ResNet-38); head layers start from their initialisation")
    optim = p.add_argument_group("optimisation (DeepLab-v2 defaults)")
    optim.add_argument("--batch_size", type=positive_int, default=10, help="DeepLab-v2: 10")
    optim.add_argument("--max_iters", type=positive_int, default=20000,
                       help="training iterations (DeepLab-v2 VOC: 20k); small for smoke runs")
    optim.add_argument("--lr", type=positive_float, default=2.5e-4, help="DeepLab-v2 base lr")
    optim.add_argument("--momentum", type=nonnegative_float, default=0.9,
                       help="DeepLab-v2 SGD momentum")
    optim.add_argument("--wt_dec", type=nonnegative_float, default=5e-4,
                       help="DeepLab-v2 weight decay")
    optim.add_argument("--crop_size", type=positive_int, default=321,
                       help="square training crop (DeepLab-v2 VOC: 321; also light on CPU)")
    optim.add_argument("--scale_range", type=positive_float, nargs=2, default=(0.5, 1.5),
                       metavar=("MIN", "MAX"), help="random image scale (DeepLab-v2: 0.5-1.5)")
    optim.add_argument("--amp", action="store_true",
                       help="mixed precision on CUDA (ignored on CPU); default fp32, as "
                            "the papers trained; not with --precision bf16")
    add_precision_arg(optim)
    optim.add_argument("--seed", type=int, default=0,
                       help="the batch order and augmentation of every step")
    out = p.add_argument_group("output")
    out.add_argument("--save_path", required=True, help="final weights (plain state dict)")
    out.add_argument("--save_every", type=positive_int, default=1000,
                     help="iterations between training-state saves (<save_path>.state)")
    checkpoint.add_resume_arg(out, "<save_path>.state")
    out.add_argument("--log_every", type=positive_int, default=50,
                     help="iterations between loss lines")
    add_device_arg(out)
    return p


def make_dataset(args):
    img_dir = args.img_dir or (voc_dirs(args.voc12_root)["images"] if args.voc12_root else None)
    if img_dir is None:
        raise InputError("--img_dir / --voc12_root: give the image folder")
    if not os.path.isdir(args.label_dir):
        raise InputError(f"{args.label_dir}: label folder not found")
    data = labelled_images(args, read_image_list(args.train_list),
                           optional_labels_path(args.cls_labels, args.voc12_root))
    if dist.is_main_process():
        print(f"train_seg: {len(data.ids)} images, {data.num_classes + 1} classes with "
              f"background ({data.skipped})")
    return seg_train_dataset(data.ids, img_dir, args.label_dir, data.num_classes + 1,
                             args.crop_size, args.scale_range)


def resume_path(args):
    """The training state --resume continues from, or None for a fresh start."""
    return checkpoint.requested_training_state(args.resume, args.save_path + STATE_SUFFIX,
                                               "train_seg")


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    ordered_pair(parser, "--scale_range", args.scale_range)
    reject_amp_with_bf16(parser, args.amp, args.precision)
    state_path = args.save_path + STATE_SUFFIX
    for path in (args.save_path, state_path):
        check_output_file(path, "--save_path")
    info = dist.init_distributed(args.device)
    torch.manual_seed(args.seed + info.rank)
    dataset = make_dataset(args)
    net = build_model(args.model, dataset.dataset.num_classes, args.width, args.freeze_bn)
    main_proc = dist.is_main_process()
    saved = resume_path(args)
    if args.init_weights and saved is None:
        load_init_weights(net, args.init_weights)
    net.to(info.device).train()
    optimizer = psa_optimizer(net, args.lr, args.wt_dec, args.max_iters, args.momentum)
    amp = args.amp and info.device.type == "cuda"
    scaler = torch.amp.GradScaler(info.device.type, enabled=amp)
    start = resume_training(saved, net, optimizer, scaler, args.precision) if saved else 0
    model = DistributedDataParallel(net) if info.distributed else net
    loader = seg_train_loader(dataset, args.batch_size, args.seed, info, start, args.max_iters,
                              args.num_workers, args.train_list)
    per_epoch, data = loader.batch_sampler.per_epoch, iter(loader)
    bar = progress(range(start, args.max_iters), "train_seg", total=args.max_iters - start,
                   disable=not main_proc)
    loss = float("nan")
    for it in bar:
        images, labels = next(data)
        loss = sgd_step(model, optimizer, images.to(info.device), labels.to(info.device),
                        seg_loss_terms, scaler, amp, iteration=it + 1,
                        precision=args.precision)["loss"]
        done = it + 1
        if main_proc and (done % args.log_every == 0 or done == args.max_iters):
            lr = optimizer.param_groups[0]["lr"]
            bar.write(json_line({"iter": done, "loss": round(loss, 5), "lr": lr}))
        if main_proc and (done % args.save_every == 0 and done < args.max_iters):
            checkpoint.save_training_state(state_path, net, optimizer, done // per_epoch,
                                           done, scaler=scaler.state_dict(),
                                           rng=torch.get_rng_state(), precision=args.precision)
    if main_proc:
        checkpoint.save_checkpoint(args.save_path, net.state_dict())
        print(f"train_seg: {args.model} trained to iteration {args.max_iters} "
              f"(last loss {loss:.4f}); weights in {args.save_path}")
    dist.cleanup()


if __name__ == "__main__":
    run_main(main)
