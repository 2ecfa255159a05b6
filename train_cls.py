"""Train the ResNet-38 multi-label classifier (psa `train_cls.py` recipe).

Saves `<save_dir>/<session_name>.pth` (plain state dict, what infer_cls.py reads) and
`<session_name>_state.pth` (model + optimiser + epoch, what --resume reads) after every
epoch. Runs under torchrun with DistributedDataParallel (one process per GPU)."""
import os

import torch

from network import resnet38_cls
from tool.core.checkpoint import load_weights
from tool.core.cli import ordered_pair, positive_int, run_main, script_parser
from tool.core.dist import cleanup, init_distributed, is_main_process
from tool.data.classes import add_class_args, labelled_images
from tool.data.cls_data import (CROP_SIZE, RESIZE_LONG, ClassifierAugment, classifier_loader,
                                multilabel_loss)
from tool.data.voc import read_image_list
from tool.psa.training import (add_psa_data_args, add_psa_training_args, add_trunk_args, train_psa,
                               weights_path)


def build_parser():
    p = script_parser(__doc__)
    data = add_psa_data_args(p)
    data.add_argument("--cls_labels", default=None,
                      help="psa cls_labels.npy (default: <voc12_root>/cls_labels.npy)")
    data.add_argument("--crop_size", type=positive_int, default=CROP_SIZE, help="psa: 448")
    data.add_argument("--resize_long", type=positive_int, nargs=2, default=list(RESIZE_LONG),
                      help="psa: random long side in [256, 512]")
    model = p.add_argument_group("model")
    model.add_argument("--weights", default=None,
                       help="initial weights: ImageNet ResNet-38 (MXNet .params or .pth) or "
                            "a classifier checkpoint; none = random init")
    add_class_args(model, with_background=False, found_in="the image labels")
    add_trunk_args(model)
    add_psa_training_args(p, batch_size=16, max_epoches=15, session_name="resnet38_cls")
    return p


def build_model(args, num_classes):
    net = resnet38_cls.Net(num_classes=num_classes, width=args.width)
    net.freeze_batchnorm = not args.train_bn
    if args.weights:
        load_weights(net, args.weights, num_classes=num_classes, allow_missing=("fc8",))
    return net


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    ordered_pair(parser, "--resize_long", args.resize_long)
    dist = init_distributed(args.device)
    torch.manual_seed(args.seed + dist.rank)
    labels_path = args.cls_labels or os.path.join(args.voc12_root, "cls_labels.npy")
    data = labelled_images(args, read_image_list(args.train_list), labels_path)
    loader = classifier_loader(data.ids, os.path.join(args.voc12_root, "JPEGImages"),
                               data.labels, labels_path, args.batch_size, args.num_workers,
                               ClassifierAugment(args.crop_size, tuple(args.resize_long)),
                               args.seed, dist.rank, dist.world_size)
    net = build_model(args, data.num_classes).to(dist.device)
    step, running = train_psa(net, loader, args, dist, multilabel_loss, "train_cls")
    if is_main_process():
        print(f"train_cls: {step} steps, last loss {running.get('loss', 0.0):.4f}, saved "
              f"{weights_path(args)} ({data.num_classes} classes; images: {data.skipped})")
    cleanup()


if __name__ == "__main__":
    run_main(main)
