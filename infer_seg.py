"""Predict segmentation label maps with a network trained by train_seg.py: single scale,
or multi-scale (`--scales`) with horizontal flips (`--flip`), optionally refined by a
dense CRF (`--use_crf`). Writes palette PNGs <id>.png, optional overlays, and
`settings.json` (model, weights, scales, flip, CRF) that eval_seg.py prints with its numbers.

Shard a list over processes with `--shard i/n` or by running under torchrun.

Example (the paper setting: multi-scale + flip + CRF):
  python infer_seg.py --model deeplabv2 --weights seg_deeplabv2.pth --infer_list val.txt \
      --voc12_root VOC2012 --save_path out_seg --scales 0.5 0.75 1.0 1.25 1.5 --flip --use_crf
"""
import os

from network.seg_models import MODELS, build_model
from tool.core import checkpoint, dist
from tool.core.cli import add_overwrite_arg, positive_float, progress, run_main, script_parser
from tool.core.io import (InputError, claim_output_folders, output_done, read_image, save_label_png,
                          save_rgb)
from tool.core.visualize import label_overlay
from tool.data.classes import add_class_args, resolve_checkpoint_num_classes
from tool.data.voc import find_image, read_image_list, voc_dirs
from tool.seg.infer import CRF_FUNCTIONS, MS_SCALES, SINGLE_SCALE, inference_settings, predict_label


def build_parser():
    p = script_parser(__doc__, first_paragraph=True)
    p.add_argument("--model", choices=sorted(MODELS), default="deeplabv2")
    p.add_argument("--weights", required=True, help="state dict written by train_seg.py")
    p.add_argument("--width", type=positive_float, default=1.0, help="as used for training")
    add_class_args(p, with_background=True, found_in="the checkpoint's segmentation head")
    p.add_argument("--infer_list", required=True, help="image ids (bare or psa pair lines)")
    p.add_argument("--voc12_root", help="VOC2012 folder; images from its JPEGImages")
    p.add_argument("--img_dir", help="image folder (overrides --voc12_root)")
    p.add_argument("--save_path", required=True, help="folder for the predicted <id>.png")
    p.add_argument("--out_overlay", help="folder for prediction overlays <id>.jpg (optional)")
    p.add_argument("--scales", type=positive_float, nargs="+", default=list(SINGLE_SCALE),
                   help=f"input scales; the DeepLab-v2 multi-scale test uses {list(MS_SCALES)}")
    p.add_argument("--flip", action="store_true",
                   help="also average the horizontally mirrored inputs")
    p.add_argument("--use_crf", action="store_true", help="dense CRF over the probabilities")
    p.add_argument("--crf_params", choices=sorted(CRF_FUNCTIONS), default="inf",
                   help="inf: AuxSegNet's inference CRF (gauss 4/3, bilateral 83/5/3), tuned "
                        "for segmentation outputs; psa: psa's crf_inference (3/3, 80/13/10)")
    add_overwrite_arg(p, "redo existing predictions")
    dist.add_inference_environment_args(p)
    return p


def image_folder(args):
    if args.img_dir:
        return args.img_dir
    if args.voc12_root:
        return voc_dirs(args.voc12_root)["images"]
    raise InputError("--img_dir / --voc12_root: give the image folder")


def output_paths(args, img_id):
    """The prediction PNG and the overlay (None without --out_overlay) of one image."""
    return (os.path.join(args.save_path, img_id + ".png"),
            os.path.join(args.out_overlay, img_id + ".jpg") if args.out_overlay else None)


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = dist.rank_device(args.device)
    img_dir = image_folder(args)
    ids = dist.shard_ids(read_image_list(args.infer_list), args)
    state = checkpoint.read_checkpoint(args.weights)
    num_classes = resolve_checkpoint_num_classes(args, state, args.weights)
    crf_kind = args.crf_params if args.use_crf else None
    settings = {**inference_settings(args.model, args.weights, args.scales, args.flip, crf_kind,
                                     args.precision),
                "num_classes": num_classes}
    claim = claim_output_folders([("--save_path", args.save_path, settings),
                                  ("--out_overlay", args.out_overlay, settings)], args.overwrite)
    net = build_model(args.model, num_classes, args.width)
    missing, unexpected = checkpoint.load_state(net, state, args.weights, strict=True)
    print(checkpoint.load_report(args.weights, state, missing, unexpected), flush=True)
    net.to(device).eval()
    written = 0
    for img_id in progress(ids, "infer_seg"):
        out_path, overlay_path = output_paths(args, img_id)
        if all(output_done(p, args.overwrite) for p in (out_path, overlay_path) if p):
            continue
        rgb = read_image(find_image(img_dir, img_id))
        pred = predict_label(net, rgb, args.scales, args.flip, crf_kind, device, args.precision)
        claim.record()
        save_label_png(out_path, pred)
        if overlay_path:
            save_rgb(overlay_path, label_overlay(rgb, pred))
        written += 1
    print(f"infer_seg: {written} predictions written, {len(ids) - written} already there, "
          f"in {args.save_path}")


if __name__ == "__main__":
    run_main(main)
