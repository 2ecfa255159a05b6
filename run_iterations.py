"""AuxSegNet's iterative pseudo-label refinement: N rounds of train_AuxAff -> gen_pgt.

Round 1 trains on the initial pseudo labels from the classifier's weights; round k
trains on round k-1's updated labels from round k-1's weights. gen_pgt always fuses
with the ORIGINAL saliency maps. Each round lives in <work_dir>/round_<k>/ (model/,
seg_pgt/, sal_pgt/, done.json). A rerun skips finished rounds, resumes an interrupted
training from its last epoch and keeps the pseudo labels already written. With --gt_dir,
each round's segmentation pseudo labels are scored (eval_seg.py, its JSON kept beside them)
and one table closes the run. (Paper, VOC val without post-processing, rounds 0-4: 64.1 / 65.6 /
66.0 / 66.1 / 66.1 mIoU.) Single process; run the stages by hand for torchrun.

    python run_iterations.py --rounds 3 --work_dir aux_iter --img_path VOC2012/JPEGImages \\
        --SALpath VOC2012/SAL --seg_pgt_path init/seg --sal_pgt_path VOC2012/SAL \\
        --init_weights res38_cls.pth --list_path voc12/train_aug_id.txt \\
        --gt_dir VOC2012/SegmentationClassAug
"""
import os
import shlex

import eval_seg
import gen_pgt
import train_AuxAff
from tool.auxsegnet.training import SESSION_NAME, training_outputs
from tool.core.cli import (add_device_arg, nonnegative_int, positive_float, positive_int, run_main,
                           script_parser)
from tool.core.io import InputError, check_output_folder, load_json, save_json, save_text
from tool.data.classes import add_class_args, class_flags, labelled_images
from tool.data.voc import read_image_list

DONE_FILE = "done.json"
SCORES_FILE = "pgt_scores.json"  # eval_seg.py's result for a folder of pseudo labels
SCORED_IDS_FILE = "scored_ids.txt"  # the listed images with a labelled class
ROUND_RECORD_KEYS = ("round", "weights", "final_loss", "seg_pgt", "sal_pgt", "scores")


def build_parser():
    p = script_parser(__doc__, first_paragraph=True)
    p.add_argument("--rounds", type=positive_int, default=3, help="train -> gen_pgt rounds")
    p.add_argument("--work_dir", required=True, help="one round_<k>/ folder per round")
    p.add_argument("--img_path", required=True, help="training images <id>.jpg")
    p.add_argument("--SALpath", required=True, help="the original off-the-shelf saliency maps")
    p.add_argument("--seg_pgt_path", required=True, help="initial segmentation pseudo labels")
    p.add_argument("--sal_pgt_path", required=True,
                   help="initial saliency pseudo labels (usually the same as --SALpath)")
    p.add_argument("--init_weights", required=True, help="round 1 init: the classifier")
    p.add_argument("--list_path", default="voc12/train_aug_id.txt", help="training ids")
    p.add_argument("--cls_labels", default="voc12/cls_labels.npy", help="psa image labels")
    add_class_args(p, with_background=True, found_in="the image labels")
    p.add_argument("--num_epochs", type=positive_int, default=15,
                   help="round 1 epochs (paper: 15)")
    p.add_argument("--later_epochs", type=positive_int, default=None,
                   help="epochs of rounds 2.. (paper: 10; default: --num_epochs, as released)")
    p.add_argument("--width", type=positive_float, default=1.0,
                   help="channel width (CPU runs: 0.125)")
    p.add_argument("--workers", type=nonnegative_int, default=1, help="gen_pgt CRF processes")
    p.add_argument("--train_args", default="",
                   help="more train_AuxAff.py flags, one string, e.g. '--crop_size 64'")
    p.add_argument("--session_name", default=SESSION_NAME,
                   help="train_AuxAff.py's file name prefix in every round (released)")
    p.add_argument("--gt_dir", default=None,
                   help="ground-truth label PNGs: score each round's pseudo labels")
    add_device_arg(p)
    return p


def round_paths(work_dir, k):
    root = os.path.join(work_dir, f"round_{k}")
    return {"root": root, "model": os.path.join(root, "model"),
            "seg": os.path.join(root, "seg_pgt"), "sal": os.path.join(root, "sal_pgt"),
            "done": os.path.join(root, DONE_FILE)}


def train_argv(args, k):
    """train_AuxAff.py flags of round k, without the init/resume flag."""
    if k == 1:
        seg, sal = args.seg_pgt_path, args.sal_pgt_path
    else:
        prev = round_paths(args.work_dir, k - 1)
        seg, sal = prev["seg"], prev["sal"]
    epochs = args.num_epochs if k == 1 or args.later_epochs is None else args.later_epochs
    return ["--img_path", args.img_path, "--seg_pgt_path", seg, "--sal_pgt_path", sal,
            "--list_path", args.list_path, "--cls_labels", args.cls_labels,
            *class_flags(args), "--num_epochs", str(epochs),
            "--width", str(args.width), "--device", args.device,
            "--save_path", round_paths(args.work_dir, k)["model"],
            "--session_name", args.session_name, *shlex.split(args.train_args)]


def train_outputs(args, k):
    return training_outputs(round_paths(args.work_dir, k)["model"], args.session_name)


def train_round(args, k):
    """Train round k (from the classifier, then from the previous round's weights) unless
    its weights exist; resume an interrupted run. Returns (weights, last loss line)."""
    out = train_outputs(args, k)
    if not os.path.isfile(out["final"]):
        init = args.init_weights if k == 1 else train_outputs(args, k - 1)["final"]
        resume = ["--resume"] if os.path.isfile(out["state"]) else ["--init_weights", init]
        train_AuxAff.main(train_argv(args, k) + resume)
    log = load_json(out["log"], "training log")
    if not isinstance(log, list) or not all(isinstance(r, dict) for r in log):
        raise InputError(f"{out['log']}: training log must be a list of loss records")
    return out["final"], (log[-1] if log else {})


def update_round(args, weights, paths):
    gen_pgt.main(["--weights", weights, "--img_path", args.img_path, "--SALpath", args.SALpath,
                  "--seg_pgt_path", paths["seg"], "--sal_pgt_path", paths["sal"],
                  "--list_path", args.list_path, "--cls_labels", args.cls_labels,
                  *class_flags(args), "--workers", str(args.workers),
                  "--device", args.device])


def score(args, seg_dir, json_path):
    """eval_seg.py's scores of the pseudo labels of the listed images with a labelled class
    (the others get none), kept in `json_path`; None without --gt_dir."""
    if args.gt_dir is None:
        return None
    scored = os.path.join(args.work_dir, SCORED_IDS_FILE)
    data = labelled_images(args, read_image_list(args.list_path), args.cls_labels)
    save_text(scored, "".join(i + "\n" for i in data.ids))
    eval_seg.main(["--list", scored, "--gt_dir", args.gt_dir, "--pred_dir", seg_dir,
                   "--cls_labels", args.cls_labels, *class_flags(args), "--json_out", json_path,
                   "--quiet"])
    result = load_json(json_path, "evaluation result")
    return {"miou": result["miou"], "pixel_accuracy": result["pixel_accuracy"]}


def run_round(args, k):
    """Round k's record, from its done.json when it has finished before."""
    paths = round_paths(args.work_dir, k)
    if os.path.isfile(paths["done"]):
        record = load_json(paths["done"], "round record")
        if not isinstance(record, dict) or any(key not in record for key in ROUND_RECORD_KEYS):
            raise InputError(f"{paths['done']}: round record needs the keys "
                             f"{', '.join(ROUND_RECORD_KEYS)}; delete it to redo the round")
        return record
    weights, last = train_round(args, k)
    update_round(args, weights, paths)
    record = {"round": k, "weights": weights, "final_loss": last.get("loss"),
              "seg_pgt": paths["seg"], "sal_pgt": paths["sal"],
              "scores": score(args, paths["seg"], os.path.join(paths["root"], SCORES_FILE))}
    save_json(paths["done"], record)
    return record


def _cell(value, fmt, width):
    return ("-" if value is None else format(value, fmt)).rjust(width)


def summary_table(records, initial_scores):
    """One line per round (round 0: the initial labels): final training loss, mIoU and
    pixel accuracy of the segmentation pseudo labels, their folder."""
    lines = ["round  final loss  pseudo-label mIoU  pixel acc  labels"]
    rows = [(0, None, initial_scores, "(initial)")]
    rows += [(r["round"], r["final_loss"], r["scores"], r["seg_pgt"]) for r in records]
    for k, loss, scores, where in rows:
        scores = scores or {}
        lines.append(f"{k:>5}  {_cell(loss, '.4f', 10)}  {_cell(scores.get('miou'), '.2f', 17)}"
                     f"  {_cell(scores.get('pixel_accuracy'), '.2f', 9)}  {where}")
    return "\n".join(lines)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if "--session_name" in shlex.split(args.train_args):
        parser.error("--train_args: give --session_name to run_iterations.py itself")
    check_output_folder(args.work_dir, "--work_dir")
    labelled_images(args, read_image_list(args.list_path), args.cls_labels)  # fail early
    records = [run_round(args, k) for k in range(1, args.rounds + 1)]
    initial = score(args, args.seg_pgt_path, os.path.join(args.work_dir, "initial_" + SCORES_FILE))
    table = summary_table(records, initial)
    print(table)
    save_json(os.path.join(args.work_dir, "summary.json"), records)
    return records


if __name__ == "__main__":
    run_main(main)
