"""Evaluate label maps or CAMs against ground-truth label PNGs: one confusion matrix over
the whole list (VOC protocol), per-class IoU table, and for CAMs an optional sweep of the
background threshold in a single pass over the data.

    python eval_seg.py --list val.txt --voc12_root VOC2012 --pred_dir out_rw
    python eval_seg.py --list train.txt --voc12_root VOC2012 --pred_dir out_cam --type cam --sweep

A `settings.json` in the prediction folder (written by the inference scripts: scales,
flip, CRF, ...) is printed with the numbers and stored in the JSON output."""
from tool.cam.multiscale import CAM_BG_THRESHOLD
from tool.core.cli import ArgumentParser, run_main
from tool.core.io import InputError, check_output_file, save_json
from tool.data.classes import add_class_args, labelled_images, optional_labels_path
from tool.data.voc import read_image_list, voc_dirs
from tool.seg import metrics
from tool.seg.evaluate import (PRED_EXTENSION, SWEEP_THRESHOLDS, evaluate_folder, format_result,
                               summary_line)


def build_parser():
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--list", required=True,
                   help="image list: bare ids or psa lines '/JPEGImages/<id>.jpg ...'")
    gt = p.add_mutually_exclusive_group(required=True)
    gt.add_argument("--gt_dir", help="folder of ground-truth label PNGs <id>.png")
    gt.add_argument("--voc12_root", help="VOC2012 folder; uses SegmentationClassAug, "
                                         "else SegmentationClass")
    p.add_argument("--pred_dir", required=True, help="folder of predictions <id>.png / <id>.npy")
    p.add_argument("--type", default="png", choices=sorted(PRED_EXTENSION),
                   help="png: label PNGs; cam: psa CAM dicts {class index: HxW}; "
                        "crf: CRF dicts {0: bg, k+1: class k} (psa la/ha CRF)")
    p.add_argument("--bg_threshold", type=float, default=CAM_BG_THRESHOLD,
                   help="cam: constant background score (psa infer_cls.py cam_pred: 0.2)")
    p.add_argument("--sweep", type=float, nargs="*", default=None,
                   help="cam: also evaluate these background thresholds in the same pass "
                        f"(no values: {SWEEP_THRESHOLDS[0]}..{SWEEP_THRESHOLDS[-1]} step 0.05)")
    p.add_argument("--cls_labels", default=None,
                   help="image labels (cls_labels.npy), read for the class count only; "
                        "default: <voc12_root>/cls_labels.npy when it exists")
    add_class_args(p, with_background=True, found_in="the image labels when there are any")
    p.add_argument("--class_names", default=None,
                   help="comma-separated class names, background first (default: the "
                        "dataset's: VOC background + 20 classes, COCO background + 80)")
    p.add_argument("--json_out", default=None, help="write the results as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no tables")
    return p


def resolve_gt_dir(args):
    if args.gt_dir is not None:
        return args.gt_dir
    labels = voc_dirs(args.voc12_root)["labels"]
    if labels is None:
        raise InputError(f"{args.voc12_root}: no SegmentationClassAug or SegmentationClass folder")
    return labels


def num_classes_with_background(args):
    """From the image labels when there are any (see --cls_labels), else the flags."""
    no_ids = ()  # every listed image is scored, labelled or not
    labels_path = optional_labels_path(args.cls_labels, args.voc12_root)
    return labelled_images(args, no_ids, labels_path).num_classes + 1


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.json_out:
        check_output_file(args.json_out, "--json_out")
    thresholds = None
    if args.sweep is not None:
        thresholds = args.sweep or list(SWEEP_THRESHOLDS)
    class_names = args.class_names.split(",") if args.class_names else None
    result = evaluate_folder(read_image_list(args.list), resolve_gt_dir(args), args.pred_dir,
                             kind=args.type, bg_threshold=args.bg_threshold,
                             thresholds=thresholds, num_classes=num_classes_with_background(args),
                             class_names=class_names, quiet=args.quiet, dataset=args.dataset)
    if not args.quiet:
        print(format_result(result))
    if args.json_out:
        save_json(args.json_out, result)
    print(summary_line(result))
    return result


if __name__ == "__main__":
    run_main(main)
