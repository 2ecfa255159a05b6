"""Segment images with a trained AuxSegNet (released infer_AuxAff.py).

Released behaviour (the default): single scale, softmax of the refined segmentation
upsampled to the image, optional dense CRF (--use_crf: 10 iterations, Gaussian sxy 4
compat 3, bilateral sxy 83 srgb 5 compat 3), argmax. The paper's 69.0 VOC val mIoU adds
multi-scale and flip: --scales 1.0 0.5 1.5 2.0 --flip --use_crf.

    python infer_AuxAff.py --img_path VOC2012/JPEGImages --list_path voc12/val_id.txt \\
        --weights aux_round3/AuxSegNet_final.pth --save_path pred_val --use_crf

Writes <save_path>/<id>.png (VOC palette) and settings.json (scales, flip, CRF) that
eval_seg.py prints with its scores. Split the list with --shard i/n or torchrun.
"""
import argparse
import os

from tool.auxsegnet import infer, model
from tool.core import checkpoint, dist
from tool.core.cli import add_overwrite_arg, positive_float, progress, run_main, script_parser
from tool.core.io import claim_output_folders, output_done, read_image, save_label_png, save_rgb
from tool.core.visualize import label_overlay
from tool.data.classes import add_class_args, resolve_checkpoint_num_classes
from tool.data.voc import find_image, read_image_list
from tool.seg.infer import SINGLE_SCALE, inference_settings


def str2bool(text):
    """The released script's --use_crf parser (True/False, yes/no, 1/0...)."""
    value = text.lower()
    if value in ("yes", "true", "t", "y", "1"):
        return True
    if value in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


def build_parser():
    p = script_parser(__doc__, first_paragraph=True)
    p.add_argument("--img_path", required=True, help="images <id>.jpg")
    p.add_argument("--weights", required=True, help="trained AuxSegNet weights")
    p.add_argument("--save_path", required=True, help="output folder of label PNGs")
    p.add_argument("--list_path", default="voc12/val_id.txt",
                   help="image ids (released default: VOC val)")
    add_class_args(p, with_background=True, found_in="the checkpoint's segmentation head")
    model.add_width_arg(p)
    p.add_argument("--use_crf", nargs="?", const=True, default=False, type=str2bool,
                   help="dense CRF (AuxSegNet inference parameters); released form "
                        "'--use_crf True' works too")
    p.add_argument("--scales", type=positive_float, nargs="+", default=list(SINGLE_SCALE),
                   help="input scales, probabilities averaged (released: 1.0; the paper's "
                        "multi-scale test: 1.0 0.5 1.5 2.0)")
    p.add_argument("--flip", action="store_true",
                   help="also average over horizontally flipped inputs (paper)")
    p.add_argument("--out_overlay", default=None, help="optional folder of label overlays")
    add_overwrite_arg(p)
    model.add_released_inference_args(p)
    return p


def claim_outputs(args, num_classes):
    """Check the output folders against the settings that write them (settings.json);
    num_classes: with background."""
    settings = inference_settings("AuxSegNet", args.weights, args.scales, args.flip,
                                  "inf" if args.use_crf else None, args.precision)
    settings.update(stage="infer_AuxAff", num_classes=num_classes)
    return claim_output_folders([("--save_path", args.save_path, settings),
                                 ("--out_overlay", args.out_overlay, settings)], args.overwrite)


def output_paths(args, img_id):
    """The label PNG and the overlay (None without --out_overlay) of one image."""
    return (os.path.join(args.save_path, img_id + ".png"),
            os.path.join(args.out_overlay, img_id + ".png") if args.out_overlay else None)


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = dist.rank_device(args.device, args.gpu_id)
    ids = dist.shard_ids(read_image_list(args.list_path), args)
    state = checkpoint.read_checkpoint(args.weights)
    num_classes = resolve_checkpoint_num_classes(args, state, args.weights)
    claim = claim_outputs(args, num_classes)
    net = model.segnet_from_state(state, args.weights, num_classes, args.width, device)
    todo = [i for i in ids
            if not all(output_done(p, args.overwrite) for p in output_paths(args, i) if p)]
    for img_id in progress(todo, "infer_AuxAff"):
        rgb = read_image(find_image(args.img_path, img_id))
        pred, _ = infer.predict_segmentation(net, rgb, args.scales, args.flip, args.use_crf,
                                             device, args.precision)
        out_path, overlay_path = output_paths(args, img_id)
        claim.record()
        save_label_png(out_path, pred)
        if overlay_path:
            save_rgb(overlay_path, label_overlay(rgb, pred))
    print(f"infer_AuxAff: {len(todo)} images segmented, {len(ids) - len(todo)} already done "
          f"(scales {args.scales}, flip {args.flip}, crf {args.use_crf}) in {args.save_path}")
    return len(todo)


if __name__ == "__main__":
    run_main(main)
