"""The whole pipeline in one command: classifier → CAMs → InferCam CAMs → AffinityNet
random walk → initial pseudo labels (CAM + saliency fusion) → AuxSegNet rounds →
predictions on the val list → evaluation, then one table and one picture.

By default it runs on the built-in demo dataset on CPU (`make demo`, about 15 minutes on
2 cores). With `--profile paper --voc12_root ... --sal_dir ...` it runs the papers'
configuration on PASCAL VOC (see README, "Reproducing the papers").

Every stage runs as its own script (the command is printed, so any stage can be re-run
by hand), writes into its own folder under --out, and is skipped when a rerun finds it
finished (`<out>/done/<stage>`); `--redo STAGE ...` forces stages again."""
import argparse
import math
import os
import shlex
import subprocess
import sys
import time

from tool.core.cli import ArgumentParser, positive_int, run_main
from tool.core.io import (check_output_folder, load_cam_dict, load_json, read_image, read_label_png,
                          save_rgb, save_text)
from tool.core.visualize import cam_dict_overlay, colorize_label, image_grid
from tool.data.voc import find_image, find_label, read_image_list

REPO = os.path.dirname(os.path.abspath(__file__))

# Per profile: the flags that differ from each script's (paper) defaults.
PROFILES = {
    "demo": {
        "width": "0.125",
        "cls": ["--crop_size", "128", "--resize_long", "112", "160", "--batch_size", "16",
                "--max_epoches", "6", "--lr", "0.05", "--momentum", "0.9", "--train_bn",
                "--num_workers", "1"],
        "aff": ["--crop_size", "128", "--batch_size", "8", "--max_epoches", "15", "--lr", "0.05",
                "--momentum", "0.9", "--train_bn", "--num_workers", "1"],
        # the walk on a 2x grid (a 1/8 grid of ~128 px images is too coarse to walk on),
        # alpha matched to each CAM's best background threshold (see cam_alpha)
        "rw": ["--beta", "16", "--logt", "5", "--scale", "2"],
        "rw_alpha": "from_cam_sweep",
        "aux_rounds": "2",
        "aux": ["--num_epochs", "15", "--later_epochs", "8", "--train_args",
                "--crop_size 128 --batch_size 4 --lr 0.002 --momentum 0.9 --num_workers 1"],
        "seg": ["--crop_size", "128", "--batch_size", "8", "--max_iters", "200", "--lr", "0.01",
                "--num_workers", "1", "--log_every", "100"],
        "workers": "2",
    },
    "paper": {"width": "1.0", "cls": [], "aff": [], "rw": [], "rw_alpha": "16",
              "aux_rounds": "3", "aux": ["--later_epochs", "10"], "seg": [], "workers": "8"},
}
PICTURE_IMAGES = 4


def build_parser():
    p = ArgumentParser(description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=sorted(PROFILES), default="demo")
    p.add_argument("--out", default="demo_out", help="all stage folders go here")
    p.add_argument("--voc12_root", default=None,
                   help="VOC-layout dataset (default for the demo: <out>/data, generated)")
    p.add_argument("--sal_dir", default=None, help="off-the-shelf saliency maps (default: <root>/SAL)")
    p.add_argument("--train_list", default=None, help="default: <root>/train_aug.txt")
    p.add_argument("--val_list", default=None, help="default: <root>/val.txt")
    p.add_argument("--cls_weights", default=None,
                   help="a trained classifier (e.g. psa's res38_cls.pth): skips train_cls")
    p.add_argument("--init_weights", default=None,
                   help="ImageNet ResNet-38 (MXNet .params or .pth) for train_cls/train_aff")
    p.add_argument("--seed", type=int, default=0, help="demo dataset seed")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch CPU threads per stage (OMP_NUM_THREADS); small networks run "
                        "fastest on one thread beside data-loading and CRF processes")
    p.add_argument("--redo", nargs="*", default=[], help="stages to run again")
    return p


class Pipeline:
    """Runs stage commands, remembers which finished, collects evaluation results."""

    def __init__(self, args):
        self.args = args
        self.out = os.path.abspath(args.out)
        self.profile = PROFILES[args.profile]
        self.results = {}
        self.root = os.path.abspath(args.voc12_root or self.path("data"))
        self.gt_dir = os.path.join(self.root, "SegmentationClassAug")
        os.makedirs(os.path.join(self.out, "done"), exist_ok=True)

    def path(self, *parts):
        return os.path.join(self.out, *parts)

    def stage(self, name, script, argv):
        marker = self.path("done", name)
        if os.path.exists(marker) and name not in self.args.redo:
            print(f"[{name}] done already, skipped", flush=True)
            return
        cmd = [sys.executable, os.path.join(REPO, script)] + [str(a) for a in argv]
        print(f"[{name}] {shlex.join(cmd[1:])}", flush=True)
        start = time.time()
        env = dict(os.environ, OMP_NUM_THREADS=str(self.args.threads))
        code = subprocess.run(cmd, cwd=REPO, env=env).returncode
        if code:
            raise SystemExit(code)  # the stage has said what went wrong, in one line
        save_text(marker, shlex.join(cmd) + "\n")
        print(f"[{name}] finished in {time.time() - start:.0f} s", flush=True)

    def evaluate(self, name, ids_list, pred_dir, gt_dir, kind="png", split="train"):
        json_path = self.path("eval", f"{name}.json")
        argv = ["--list", ids_list, "--gt_dir", gt_dir, "--pred_dir", pred_dir,
                "--type", kind, "--json_out", json_path, "--quiet"]
        if kind == "cam":
            argv.append("--sweep")
        self.stage(f"eval_{name}", "eval_seg.py", argv)
        result = load_json(json_path, "evaluation result")
        sweep = result.get("sweep")
        self.results[name] = {"split": split, "miou": result["miou"],
                              "best": None if sweep is None else (sweep["best_threshold"],
                                                                  sweep["best_miou"])}


def run(args):
    pipe = Pipeline(args)
    prof = pipe.profile
    width = ["--width", prof["width"]]
    device = ["--device", args.device]
    root = pipe.root
    if args.voc12_root is None:
        make_demo_data(pipe, root)
    train_list = args.train_list or os.path.join(root, "train_aug.txt")
    val_list = args.val_list or os.path.join(root, "val.txt")
    sal_dir = args.sal_dir or os.path.join(root, "SAL")
    img_dir = os.path.join(root, "JPEGImages")
    gt_dir = pipe.gt_dir
    labels = os.path.join(root, "cls_labels.npy")
    workers = ["--num_workers", prof["workers"]]

    # 1. classifier and its CAMs (psa)
    cls_weights = args.cls_weights or pipe.path("cls", "resnet38_cls.pth")
    if not args.cls_weights:
        init = ["--weights", args.init_weights] if args.init_weights else []
        pipe.stage("train_cls", "train_cls.py",
                   ["--train_list", train_list, "--voc12_root", root, "--save_dir",
                    pipe.path("cls")] + init + width + device + prof["cls"])
    pipe.stage("infer_cls", "infer_cls.py",
               ["--infer_list", train_list, "--voc12_root", root, "--weights", cls_weights,
                "--out_cam", pipe.path("cam"), "--out_la_crf", pipe.path("crf_la"),
                "--out_ha_crf", pipe.path("crf_ha")] + width + device + workers)
    pipe.evaluate("cam", train_list, pipe.path("cam"), gt_dir, "cam")

    # 2. InferCam on the same classifier
    pipe.stage("split_img", "split_img.py",
               ["--infer_list", train_list, "--voc12_root", root, "--weights", cls_weights,
                "--split_path", pipe.path("infercam_split")] + width + device)
    pipe.stage("infer_cam", "infer_cam.py",
               ["--infer_list", train_list, "--voc12_root", root, "--weights", cls_weights,
                "--split_path", pipe.path("infercam_split"),
                "--out_cam", pipe.path("infercam_cam")] + width + device)
    pipe.evaluate("infercam", train_list, pipe.path("infercam_cam"), gt_dir, "cam")

    # 3. AffinityNet (psa: from ImageNet weights; without them, from the classifier's trunk)
    #    and the random walk, on both kinds of CAM
    pipe.stage("train_aff", "train_aff.py",
               ["--train_list", train_list, "--voc12_root", root,
                "--la_crf_dir", pipe.path("crf_la"), "--ha_crf_dir", pipe.path("crf_ha"),
                "--weights", args.init_weights or cls_weights,
                "--save_dir", pipe.path("aff")] + width + device + prof["aff"])
    aff_weights = pipe.path("aff", "resnet38_aff.pth")
    for cams, name in (("cam", "rw"), ("infercam_cam", "infercam_rw")):
        alpha = prof["rw_alpha"]
        if alpha == "from_cam_sweep":
            alpha = f"{cam_alpha(pipe.results['infercam' if cams != 'cam' else 'cam']):.2f}"
        pipe.stage(name, "infer_aff.py",
                   ["--infer_list", train_list, "--voc12_root", root, "--weights", aff_weights,
                    "--cam_dir", pipe.path(cams), "--out_rw", pipe.path(name), "--alpha", alpha]
                   + width + device + prof["rw"])
        pipe.evaluate(name, train_list, pipe.path(name), gt_dir)

    # 4. AuxSegNet: initial pseudo labels, rounds, predictions
    pipe.stage("make_pgt", "make_pgt.py",
               ["--list", train_list, "--cam_dir", pipe.path("cam"), "--sal_dir", sal_dir,
                "--cls_labels", labels, "--out_dir", pipe.path("pgt_init"),
                "--workers", prof["workers"]])
    pipe.evaluate("pgt_init", train_list, pipe.path("pgt_init"), gt_dir)
    rounds = int(prof["aux_rounds"])
    pipe.stage("aux_rounds", "run_iterations.py",
               ["--rounds", rounds, "--work_dir", pipe.path("aux"), "--img_path", img_dir,
                "--SALpath", sal_dir, "--seg_pgt_path", pipe.path("pgt_init"),
                "--sal_pgt_path", sal_dir, "--init_weights", cls_weights,
                "--list_path", train_list, "--cls_labels", labels,
                "--workers", prof["workers"]] + width + device + prof["aux"])
    for k in range(1, rounds + 1):
        pipe.evaluate(f"pgt_round{k}", train_list, pipe.path("aux", f"round_{k}", "seg_pgt"),
                      gt_dir)
    aux_weights = final_aux_weights(pipe.path("aux", f"round_{rounds}"))
    for crf, name in (("False", "aux_val"), ("True", "aux_val_crf")):
        pipe.stage(name, "infer_AuxAff.py",
                   ["--img_path", img_dir, "--weights", aux_weights, "--save_path",
                    pipe.path(name), "--list_path", val_list, "--use_crf", crf] + device)
        pipe.evaluate(name, val_list, pipe.path(name), gt_dir, split="val")

    # 5. the final segmentation network (psa's LargeFOV-style ResNet-38) on two label sets
    ms_flip = ["--scales", "0.5", "0.75", "1.0", "1.25", "1.5", "--flip"]
    settings = (("ss", []), ("msf", ms_flip), ("msf_crf", ms_flip + ["--use_crf"]))
    for labels_name, label_dir in (("rw", pipe.path("rw")),
                                   ("aux", pipe.path("aux", f"round_{rounds}", "seg_pgt"))):
        weights = pipe.path(f"seg_{labels_name}", "largefov.pth")
        pipe.stage(f"train_seg_{labels_name}", "train_seg.py",
                   ["--model", "largefov", "--init_weights", cls_weights, "--train_list",
                    train_list, "--voc12_root", root, "--label_dir", label_dir,
                    "--save_path", weights] + width + device + prof["seg"])
        for tag, flags in settings:
            name = f"seg_{labels_name}_{tag}"
            pipe.stage(name, "infer_seg.py",
                       ["--model", "largefov", "--weights", weights, "--infer_list", val_list,
                        "--voc12_root", root, "--save_path", pipe.path(name)]
                       + width + device + flags)
            pipe.evaluate(name, val_list, pipe.path(name), gt_dir, split="val")

    picture_list = pipe.path("picture_ids.txt")
    save_text(picture_list, "\n".join(read_image_list(train_list)[:PICTURE_IMAGES]) + "\n")
    pipe.stage("aux_picture", "infer_AuxAff.py",
               ["--img_path", img_dir, "--weights", aux_weights, "--save_path",
                pipe.path("aux_picture"), "--list_path", picture_list, "--use_crf", "True"]
               + device)
    return pipe


def cam_alpha(cam_result):
    """The background power whose (1 - t)^alpha equals the CAM's best threshold t, so that
    the random walk starts from the best CAM labels (psa tuned 16 by hand for VOC)."""
    threshold = cam_result["best"][0]
    return math.log(threshold) / math.log(1.0 - threshold)


def final_aux_weights(round_dir):
    """The AuxSegNet checkpoint run_iterations wrote for a round."""
    return load_json(os.path.join(round_dir, "done.json"), "AuxSegNet round record")["weights"]


def make_demo_data(pipe, root):
    if os.path.exists(os.path.join(root, "cls_labels.npy")) and "data" not in pipe.args.redo:
        print("[data] done already, skipped", flush=True)
        return
    from data.make_demo_dataset import make_demo_dataset
    make_demo_dataset(root, seed=pipe.args.seed)
    print(f"[data] demo dataset in {root}", flush=True)


# Published VOC numbers next to the product they correspond to (SPEC.md, issues).
RESULT_ROWS = (
    ("cam", "CAM (psa multi-scale)", ""),
    ("infercam", "InferCam CAM", ""),
    ("rw", "random walk on CAM", ""),
    ("infercam_rw", "random walk on InferCam CAM", ""),
    ("pgt_init", "initial pseudo labels (CAM + saliency)", ""),
)
AUX_STAGE_VAL = {1: "65.6", 2: "66.0", 3: "66.1", 4: "66.1"}  # AuxSegNet ablation, val, no post


def result_table(pipe):
    rows = list(RESULT_ROWS)
    rounds = int(pipe.profile["aux_rounds"])
    rows += [(f"pgt_round{k}", f"AuxSegNet round {k} pseudo labels",
              f"val prediction after stage {k}: {AUX_STAGE_VAL[k]}" if k in AUX_STAGE_VAL else "")
             for k in range(1, rounds + 1)]
    rows += [("aux_val", "AuxSegNet val prediction (single scale)", "66.1 (no post-processing)"),
             ("aux_val_crf", "AuxSegNet val prediction + CRF", "69.0 (multi-scale + flip + CRF)")]
    for labels_name, title, paper in (("rw", "random-walk labels", "psa 61.7 (ResNet-38)"),
                                      ("aux", f"AuxSegNet round {rounds} labels", "")):
        rows += [(f"seg_{labels_name}_ss", f"LargeFOV on {title}, single scale", ""),
                 (f"seg_{labels_name}_msf", f"LargeFOV on {title}, MS + flip", ""),
                 (f"seg_{labels_name}_msf_crf", f"LargeFOV on {title}, MS + flip + CRF", paper)]
    lines = ["| product | split | mIoU | best bg threshold (mIoU) | published, VOC |",
             "| --- | --- | --- | --- | --- |"]
    for key, title, paper in rows:
        r = pipe.results.get(key)
        if r is None:
            continue
        best = "" if r["best"] is None else f"{r['best'][0]:.2f} ({r['best'][1]:.1f})"
        lines.append(f"| {title} | {r['split']} | {r['miou']:.1f} | {best} | {paper} |")
    return "\n".join(lines)


def picture(pipe, ids):
    """Grid: image, ground truth, CAM, random-walk label, initial and final pseudo label,
    AuxSegNet prediction."""
    rounds = int(pipe.profile["aux_rounds"])
    columns = (("CAM", "cam"), ("random walk", "rw"), ("initial pgt", "pgt_init"),
               (f"round {rounds} pgt", os.path.join("aux", f"round_{rounds}", "seg_pgt")),
               ("AuxSegNet + CRF", "aux_picture"))
    rows = []
    for img_id in ids:
        rgb = read_image(find_image(os.path.join(pipe.root, "JPEGImages"), img_id))
        row = [rgb, colorize_label(read_label_png(find_label(pipe.gt_dir, img_id)))]
        for _, folder in columns:
            if folder == "cam":
                row.append(cam_dict_overlay(rgb, load_cam_dict(pipe.path("cam", img_id + ".npy"))))
            else:
                row.append(colorize_label(read_label_png(pipe.path(folder, img_id + ".png"))))
        rows.append(row)
    path = pipe.path("demo_grid.png")
    save_rgb(path, image_grid(rows, ["image", "ground truth"] + [c for c, _ in columns]))
    return path


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_output_folder(args.out, "--out")
    start = time.time()
    pipe = run(args)
    table = result_table(pipe)
    save_text(pipe.path("results.md"), table + "\n")
    grid = picture(pipe, read_image_list(pipe.path("picture_ids.txt")))
    print("\n" + table)
    print(f"\nrun_demo: finished in {time.time() - start:.0f} s; table {pipe.path('results.md')}, "
          f"picture {grid}")


if __name__ == "__main__":
    run_main(main)
