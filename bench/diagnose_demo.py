"""Measured causes behind a demo run's claim lines, read from a finished run folder:

    python bench/diagnose_demo.py --run demo_out

1. CAM errors: where the false-positive pixels of the CAM and of the InferCam CAM
   (background 0.2, psa's threshold) lie, by distance to the nearest object; and how much
   each class's map gives its objects (their heads and the rest, when the run's data can be
   drawn again from its seed) against the background just around them (the halo one cell
   of the stride-8 grid wide) and far from them.
2. InferCam taken apart: its split alone (one round, no erasing), the released erasing, and
   the erasing with the mask mirrored for the flipped inputs, each at its best background
   threshold beside the CAM's.
3. The walk's labels: precision and coverage of the confident foreground / background
   pixels AffinityNet is trained on (psa's la/ha CRF rule), then the walk re-run with an
   AffinityNet trained by the run's own train_aff command on labels made from the ground
   truth instead (same schedule, same walk): how much the walk gives when its labels are
   right.
4. AuxSegNet's label update taken apart: the released update, the same with the original
   saliency instead of the fused one, and the initial labels, with the share of object
   pixels each labels background.

Every rerun replays the first line of a stage's log (its exact command, the whole list
instead of a shard) with only the named folders and flags changed, one thread each."""
import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from data.make_demo_dataset import MAX_SIZE, MIN_SIZE, demo_index, render_sample  # noqa: E402
from tool.auxsegnet import model as aux_model  # noqa: E402
from tool.auxsegnet import pgt  # noqa: E402
from tool.auxsegnet.fusion import fuse_cam_saliency  # noqa: E402
from tool.auxsegnet.training import training_outputs  # noqa: E402
from tool.cam.multiscale import CAM_BG_THRESHOLD  # noqa: E402
from tool.core.cli import run_main  # noqa: E402
from tool.core.io import (IGNORE_LABEL, load_cam_dict, read_image, read_label_png,  # noqa: E402
                          read_saliency, save_npy)
from tool.data.voc import load_cls_labels, read_image_list  # noqa: E402
from tool.psa.aff_labels import crf_label, crf_scores  # noqa: E402
from tool.seg.evaluate import SWEEP_THRESHOLDS, accumulate, prediction_at  # noqa: E402
from tool.seg.metrics import (confusion_matrix, object_precision_recall,  # noqa: E402
                              segmentation_scores)

DISTANCE_BINS = (0, 4, 8, 16)     # px from the nearest object; the last bin is open
HALO_PX = 8                       # one cell of the stride-8 CAM grid
FAR_PX = 16


class Run:
    """The folders of a finished run_demo.py run (VOC layout data)."""

    def __init__(self, out):
        self.out = Path(out)
        self.data = self.out / "data"
        self.ids = read_image_list(self.data / "train_aug.txt")
        self.labels = load_cls_labels(self.data / "cls_labels.npy")
        self.num_classes = len(next(iter(self.labels.values()))) + 1

    @property
    def gt_dir(self):
        return self.data / "SegmentationClass"

    def gt(self, img_id):
        return read_label_png(self.gt_dir / f"{img_id}.png")

    def confusion(self, folder, kind="png"):
        """The (C, C + 1) confusion matrix of a prediction folder, as eval_seg.py counts it
        (CAMs at psa's background threshold)."""
        threshold = CAM_BG_THRESHOLD if kind == "cam" else None
        return accumulate(self.ids, self.gt_dir, folder, kind, [threshold], self.num_classes,
                          quiet=True)[threshold]

    def command(self, log_name):
        """The stage's command (first line of its log) as an argv list, script first."""
        with open(self.out / "logs" / f"{log_name}.log", errors="replace") as f:
            argv = shlex.split(f.readline())
        return argv[1:]


def with_flags(argv, **changes):
    """argv with the values of --flag (one value each) replaced; flags must exist."""
    argv = list(argv)
    for flag, value in changes.items():
        i = argv.index(f"--{flag}")
        argv[i + 1] = str(value)
    return argv


def without_flags(argv, *names):
    """argv without the --name value pairs of `names` (those present)."""
    argv = list(argv)
    for name in names:
        if f"--{name}" in argv:
            i = argv.index(f"--{name}")
            del argv[i:i + 2]
    return argv


def unsharded(argv):
    """A shard's command without its --shard flag: the whole list."""
    return without_flags(argv, "shard")


def flag_value(argv, name):
    """The value that follows --name in argv (the flag must be there)."""
    return argv[argv.index(f"--{name}") + 1]


def run_scripts(*argvs):
    """Run the commands side by side, one thread each; fail if any fails."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, *argv], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for argv in argvs]
    for argv, proc in zip(argvs, procs):
        if proc.wait() != 0:
            raise subprocess.CalledProcessError(proc.returncode, argv)


def scores_line(name, conf):
    """mIoU, object precision / recall (right class), share of object pixels labelled 0."""
    precision, recall = object_precision_recall(conf)
    as_bg = 100.0 * conf[1:, 0].sum() / max(conf[1:].sum(), 1)
    return (f"  {name:<48} mIoU {segmentation_scores(conf)['miou']:5.1f}  object P/R "
            f"{precision:5.1f} / {recall:5.1f}  objects labelled background {as_bg:4.1f} %")


def best_threshold_line(run, name, folder):
    """scores_line of a CAM folder at the background threshold of eval_seg.py's sweep
    that gives the highest mIoU."""
    confs = accumulate(run.ids, run.gt_dir, folder, "cam", SWEEP_THRESHOLDS, run.num_classes,
                       quiet=True)
    best = max(confs, key=lambda t: segmentation_scores(confs[t])["miou"])
    return scores_line(f"{name} (best background {best:.2f})", confs[best])


def cam_errors(run, folder, title):
    """Share of a CAM's foreground pixels that are right, of another class, and on
    background at each distance from the nearest object."""
    bins = np.zeros(len(DISTANCE_BINS))
    right = other = predicted = 0
    for img_id in run.ids:
        gt = run.gt(img_id)
        pred = prediction_at(run.out / folder / f"{img_id}.npy", "cam", gt.shape,
                             run.num_classes)(CAM_BG_THRESHOLD)
        fg = (pred > 0) & (gt != IGNORE_LABEL)
        distance = ndimage.distance_transform_edt(gt == 0)
        false_pos = fg & (gt == 0)
        edges = list(DISTANCE_BINS[1:]) + [np.inf]
        for b, (low, high) in enumerate(zip(DISTANCE_BINS, edges)):
            bins[b] += (false_pos & (distance > low) & (distance <= high)).sum()
        predicted += fg.sum()
        right += (fg & (pred == gt)).sum()
        other += (fg & (gt > 0) & (pred != gt)).sum()
    labels = [f"{a}-{b} px" for a, b in zip(DISTANCE_BINS, DISTANCE_BINS[1:])] + \
        [f"> {DISTANCE_BINS[-1]} px"]
    print(f"   {title}: {predicted} foreground pixels, {100 * right / predicted:.1f} % right, "
          f"{100 * other / predicted:.1f} % another class; on background at "
          + ", ".join(f"{label} {100 * n / predicted:.1f} %" for label, n in zip(labels, bins)))


def rendered_heads(ids, seed, min_size=MIN_SIZE, max_size=MAX_SIZE):
    """Visible head pixels of demo images drawn again from their seed (with the dataset
    module's constants as they are now): {id: (H, W) bool}, and their label maps."""
    samples = {i: render_sample(np.random.default_rng([seed, demo_index(i)]), min_size, max_size)
               for i in ids}
    return ({i: s.heads for i, s in samples.items()}, {i: s.label for i, s in samples.items()})


def run_heads(run):
    """rendered_heads of a run's training images when its data log names the seed and the
    images drawn again match its ground truth; otherwise None (data from elsewhere)."""
    try:
        argv = run.command("data")
        seed = int(flag_value(argv, "seed"))
        heads, labels = rendered_heads(run.ids, seed)
    except (OSError, ValueError, IndexError):
        return None
    same = all(np.array_equal(labels[i], run.gt(i)) for i in run.ids)
    return heads if same else None


def activation_by_region(run, folder, heads=None):
    """Mean activation of each present class's map on that class's object pixels, on
    background within HALO_PX of them and on background beyond FAR_PX, pixel-weighted
    over the list: {"object", "halo", "far"}, plus "head" and "body" (the object pixels
    on and off its visible heads) when `heads` ({id: bool map}) is given."""
    sums, counts = {}, {}
    for img_id in run.ids:
        gt = run.gt(img_id)
        for c, cam in load_cam_dict(run.out / folder / f"{img_id}.npy").items():
            own = gt == c + 1
            distance = ndimage.distance_transform_edt(~own)
            regions = {"object": own, "halo": (gt == 0) & (distance <= HALO_PX),
                       "far": (gt == 0) & (distance > FAR_PX)}
            if heads is not None:
                regions.update(head=own & heads[img_id], body=own & ~heads[img_id])
            for region, mask in regions.items():
                sums[region] = sums.get(region, 0.0) + float(cam[mask].sum())
                counts[region] = counts.get(region, 0) + int(mask.sum())
    return {region: sums[region] / max(counts[region], 1) for region in sums}


def activation_line(means, title):
    parts = "" if "head" not in means else (f" (heads {means['head']:.3f}, the rest of them "
                                             f"{means['body']:.3f})")
    return (f"   {title}: mean activation on its objects {means['object']:.3f}{parts}, on "
            f"background within {HALO_PX} px {means['halo']:.3f}, beyond {FAR_PX} px "
            f"{means['far']:.3f}")


def infercam_parts(run, work):
    """The run's infer_cam command (whole list) with one round (the split alone) and with
    the mirrored erasing mask, against the CAM and the run's InferCam CAM."""
    command = unsharded(run.command("infer_cam.0"))
    split_only = with_flags(command, out_cam=work / "infercam_split_only") + ["--max_rounds", "1"]
    mirrored = with_flags(command, out_cam=work / "infercam_flip_mask") + ["--flip_mask"]
    run_scripts(split_only + ["--overwrite"], mirrored + ["--overwrite"])
    print("2. InferCam taken apart (training images, each at its best background threshold):")
    for name, folder in (("CAM", run.out / "cam"),
                         ("InferCam, split only", work / "infercam_split_only"),
                         ("InferCam as released", run.out / "infercam_cam"),
                         ("InferCam, mirrored mask", work / "infercam_flip_mask")):
        print(best_threshold_line(run, name, folder))


def affinity_label_quality(run):
    """psa's affinity labels from the run's la/ha CRF dicts against the ground truth."""
    fg_right = fg_all = bg_right = bg_all = gt_fg = gt_bg = 0
    for img_id in run.ids:
        gt = run.gt(img_id)
        scores, keys = crf_scores(run.out / "crf_la" / f"{img_id}.npy",
                                  run.out / "crf_ha" / f"{img_id}.npy", gt.shape)
        label = crf_label(scores, keys, stride=1)
        known = gt != IGNORE_LABEL
        fg = known & (label != IGNORE_LABEL) & (label > 0)
        bg = known & (label == 0)
        fg_right += (fg & (label == gt)).sum()
        fg_all += fg.sum()
        bg_right += (bg & (gt == 0)).sum()
        bg_all += bg.sum()
        gt_fg += (known & (gt > 0)).sum()
        gt_bg += (known & (gt == 0)).sum()
    print(f"3. AffinityNet's labels (la/ha CRF): foreground labels {100 * fg_right / fg_all:.1f} % "
          f"right, covering {100 * fg_right / gt_fg:.1f} % of the objects; background labels "
          f"{100 * bg_right / bg_all:.1f} % right, covering {100 * bg_right / gt_bg:.1f} % of "
          "the background")


def write_ground_truth_crf_dicts(run, folder):
    """la = ha = the ground truth as psa CRF dicts ({0: background, c+1: class c}); the
    boundary band is left out of the labels (la says background there, ha an object)."""
    folder.mkdir(parents=True, exist_ok=True)
    for img_id in run.ids:
        gt = run.gt(img_id)
        band = gt == IGNORE_LABEL
        classes = np.flatnonzero(run.labels[img_id])
        la = {0: ((gt == 0) | band).astype(np.float32)}
        ha = {0: (gt == 0).astype(np.float32)}
        for i, c in enumerate(classes):
            mask = (gt == c + 1).astype(np.float32)
            la[int(c) + 1] = mask
            ha[int(c) + 1] = np.maximum(mask, band) if i == 0 else mask
        save_npy(folder / "la" / f"{img_id}.npy", la)
        save_npy(folder / "ha" / f"{img_id}.npy", ha)


def walk_with_ground_truth_affinity(run, work):
    """Retrain AffinityNet (the run's command) on ground-truth labels, walk the run's CAMs."""
    write_ground_truth_crf_dicts(run, work / "gt_crf")
    train = with_flags(run.command("train_aff"), la_crf_dir=work / "gt_crf" / "la",
                       ha_crf_dir=work / "gt_crf" / "ha", save_dir=work / "aff_gt")
    run_scripts(train)
    walk = with_flags(unsharded(run.command("rw.0")),
                      weights=work / "aff_gt" / "resnet38_aff.pth", out_rw=work / "rw_gt")
    run_scripts(walk + ["--overwrite"])
    print("   the walk on the run's CAMs (mIoU on the training images):")
    print(scores_line(f"CAM, background {CAM_BG_THRESHOLD}", run.confusion(run.out / "cam", "cam")))
    print(scores_line("walk, the run's AffinityNet", run.confusion(run.out / "rw")))
    print(scores_line("walk, AffinityNet on ground-truth labels", run.confusion(work / "rw_gt")))


def aux_update_parts(run):
    """The round-1 label update with its saliency input swapped, from the run's AuxSegNet."""
    weights = training_outputs(run.out / "aux" / "round_1" / "model")["final"]
    width = float(flag_value(run.command("train_aff"), "width"))
    net = aux_model.load_segnet(str(weights), run.num_classes, width, torch.device("cpu"))
    names = ("released update (refined CAM + fused saliency)",
             "refined CAM + the original saliency", "initial labels (CAM + saliency)")
    confs = {name: np.zeros((run.num_classes, run.num_classes + 1), np.int64) for name in names}
    for img_id in run.ids:
        rgb = read_image(run.data / "JPEGImages" / f"{img_id}.jpg")
        sal = read_saliency(run.data / "SAL" / f"{img_id}.png", shape=rgb.shape)
        gt = run.gt(img_id)
        label = run.labels[img_id]
        refined_cam, ref_sal = pgt.update_scores(net, rgb)
        _, released = pgt.updated_labels(rgb, refined_cam, ref_sal, sal, label)
        preds = (released, fuse_cam_saliency(refined_cam, sal, label),
                 read_label_png(run.out / "pgt_init" / f"{img_id}.png"))
        for name, pred in zip(names, preds):
            confs[name] += confusion_matrix(pred, gt, run.num_classes)
    print("4. AuxSegNet's round-1 update taken apart (training images):")
    for name in names:
        print(scores_line(name, confs[name]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="demo_out", help="a finished run_demo.py output folder")
    p.add_argument("--work", default=None, help="scratch folder (default: RUN/diagnose)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    run = Run(args.run)
    work = Path(args.work or run.out / "diagnose")
    print(f"1. CAM foreground pixels (background {CAM_BG_THRESHOLD}) and where the wrong ones lie:")
    cam_errors(run, "cam", "CAM")
    cam_errors(run, "infercam_cam", "InferCam CAM")
    print("   Each class's map on its objects and around them:")
    heads = run_heads(run)
    for folder, title in (("cam", "CAM"), ("infercam_cam", "InferCam CAM")):
        print(activation_line(activation_by_region(run, folder, heads), title))
    infercam_parts(run, work)
    affinity_label_quality(run)
    walk_with_ground_truth_affinity(run, work)
    aux_update_parts(run)


if __name__ == "__main__":
    run_main(main)
