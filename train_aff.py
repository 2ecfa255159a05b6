"""Train AffinityNet on the low/high-alpha CRF labels of the classifier's CAMs (psa
`train_aff.py` recipe).

Saves `<save_dir>/<session_name>.pth` (plain state dict, what infer_aff.py reads) and
`<session_name>_state.pth` (model + optimiser + epoch, what --resume reads) after every
epoch. Runs under torchrun with DistributedDataParallel (one process per GPU)."""
import os

import torch

from network import resnet38_aff
from network.pairs import PAIR_RADIUS, min_input_size
from tool.core.checkpoint import load_weights
from tool.core.cli import positive_int, run_main, script_parser
from tool.core.dist import cleanup, init_distributed, is_main_process
from tool.data.classes import add_optional_labels_arg, labelled_images, optional_labels_path
from tool.data.voc import read_image_list
from tool.psa.aff_labels import CROP_SIZE, AffinityDataset, affinity_loader, affinity_loss
from tool.psa.training import (add_psa_data_args, add_psa_training_args, add_trunk_args, train_psa,
                               weights_path)

MIN_CROP = max(min_input_size())  # the pairs need a 9-wide feature map


def build_parser():
    p = script_parser(__doc__)
    data = add_psa_data_args(p)
    data.add_argument("--la_crf_dir", required=True,
                      help="low-alpha CRF dicts of infer_cls.py --out_la_crf")
    data.add_argument("--ha_crf_dir", required=True,
                      help="high-alpha CRF dicts of infer_cls.py --out_ha_crf")
    add_optional_labels_arg(data, "infer_cls.py writes no CRF dicts for them; psa uses every "
                                  "listed image")
    data.add_argument("--crop_size", type=positive_int, default=CROP_SIZE, help="psa README: 448")
    model = p.add_argument_group("model")
    model.add_argument("--weights", default=None,
                       help="initial weights, loaded non-strictly as psa: ImageNet ResNet-38 "
                            "(MXNet .params or .pth) or any ResNet-38 checkpoint; none = "
                            "random init")
    model.add_argument("--network", default="network.resnet38_aff",
                       help="accepted for psa compatibility; only network.resnet38_aff exists")
    add_trunk_args(model)
    add_psa_training_args(p, batch_size=8, max_epoches=8, session_name="resnet38_aff")
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
    data = labelled_images(args, read_image_list(args.train_list),
                           optional_labels_path(args.cls_labels, args.voc12_root))
    dataset = AffinityDataset(data.ids, os.path.join(args.voc12_root, "JPEGImages"),
                              args.la_crf_dir, args.ha_crf_dir, args.crop_size)
    loader = affinity_loader(dataset, args.batch_size, args.num_workers, args.seed, dist.rank,
                             dist.world_size)
    net = build_model(args).to(dist.device)
    step, running = train_psa(net, loader, args, dist, affinity_loss, "train_aff")
    if is_main_process():
        losses = ", ".join(f"{k} {v:.4f}" for k, v in running.items())  # loss, bg, fg, neg
        print(f"train_aff: {step} steps ({losses}), saved {weights_path(args)} "
              f"(images: {data.skipped})")
    cleanup()


if __name__ == "__main__":
    run_main(main)
