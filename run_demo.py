"""The whole pipeline in one command: classifier → CAMs → InferCam CAMs → AffinityNet
random walk → initial pseudo labels (CAM + saliency fusion) → AuxSegNet rounds → the final
segmentation network on refined and on CAM labels → evaluation, then one table with a line
per paper claim, and one picture.

By default it runs on the built-in demo dataset on CPU (`make demo`, under 10 minutes on 2
cores), every network starting from the shipped pretrained backbone
(data/resnet38_demo_pretrained.pth, the demo's ImageNet stand-in). With `--profile paper
--voc12_root ... --sal_dir ...` it runs the papers' configuration on PASCAL VOC (README,
"Reproducing the papers"). `--seeds 0 1 2` runs the demo once per seed and adds a table of
mean ± std.

Every stage runs as its own script (its command is in `<out>/logs/<stage>.log`, so any stage
can be re-run by hand), writes into its own folder under --out, and is skipped when a rerun
finds it finished (`<out>/done/<stage>`); `--redo STAGE ...` forces stages again. Stages
meet only on disk; independent ones run side by side, each with a fixed number of threads,
so a run's results do not depend on which finished first."""
import argparse
import ast
import importlib
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields, replace
from typing import Optional

from data.demo_to_coco import coco_file_stem, coco_image_id
from data.make_demo_dataset import demo_id
from tool.core.cli import positive_int, run_main, script_parser
from tool.core.io import (RunError, check_output_folder, load_cam_dict, load_json, read_image,
                          read_label_png, save_rgb, save_text)
from tool.core.visualize import cam_dict_overlay, colorize_label, image_grid
from tool.data.voc import find_image, find_label, read_image_list
from tool.seg.metrics import object_precision_recall

REPO = os.path.dirname(os.path.abspath(__file__))
PRETRAINED = os.path.join("data", "resnet38_demo_pretrained.pth")
PICTURE_IMAGES = 4
MS_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5)  # DeepLab-v2 multi-scale test
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Profile:
    """The numbers a run changes from the stage scripts' defaults (which are the papers');
    None keeps a script's default. The demo profile changes only scale (width, image and
    crop sizes, epochs, batch) plus the deviations listed in the README."""
    width: float = 1.0
    # built-in dataset (the demo)
    num_train: int = 160
    num_val: int = 40
    # psa classifier (train_cls.py)
    cls_crop: Optional[int] = None
    cls_resize_long: Optional[tuple] = None
    cls_batch: Optional[int] = None
    cls_epochs: Optional[int] = None
    # InferCam (split_img.py): start crops that would begin outside the image at its edge
    # (the released code wraps them around, which leaves 1-pixel crops on small images)
    clamp_crops: bool = False
    # psa AffinityNet (train_aff.py) and random walk (infer_aff.py)
    aff_crop: Optional[int] = None
    aff_batch: Optional[int] = None
    aff_epochs: Optional[int] = None
    rw_scale: Optional[float] = None
    rw_alpha: Optional[float] = None
    rw_beta: Optional[float] = None
    rw_logt: Optional[int] = None
    # AuxSegNet (run_iterations.py → train_AuxAff.py)
    aux_rounds: int = 3
    aux_epochs: Optional[int] = None
    aux_later_epochs: Optional[int] = 10          # the paper: 15 first round, 10 later
    aux_crop: Optional[int] = None
    aux_batch: Optional[int] = None
    aux_lr: Optional[float] = None
    # the final segmentation network (train_seg.py)
    seg_crop: Optional[int] = None
    seg_batch: Optional[int] = None
    seg_iters: Optional[int] = None
    seg_lr: Optional[float] = None
    # machine
    cores: int = 1            # stages run side by side on this many cores
    shards: int = 1           # inference stages split into this many processes
    crf_workers: int = 8      # CRF processes of an unsharded stage
    loader_workers: int = 2   # DataLoader processes of the trainers
    trainer_threads: int = 1  # torch threads of the classifier training (runs alone)


DEMO = Profile(
    width=0.125,
    cls_crop=128, cls_resize_long=(96, 160), cls_batch=16, cls_epochs=8,
    aff_crop=128, aff_batch=8, aff_epochs=8,
    clamp_crops=True,
    rw_scale=2.0, rw_beta=16, rw_logt=5,
    aux_rounds=1, aux_crop=128, aux_batch=4, aux_lr=0.01,
    seg_crop=128, seg_batch=8, seg_iters=300, seg_lr=0.005,
    cores=2, shards=2, crf_workers=1, loader_workers=0, trainer_threads=2)
PAPER = Profile(num_train=0, num_val=0, crf_workers=8, loader_workers=4)
PROFILES = {"demo": DEMO, "paper": PAPER}


def flags(**values):
    """--name value pairs for the values that are not None (tuples give several values)."""
    argv = []
    for name, value in values.items():
        if value is None:
            continue
        argv.append(f"--{name}")
        argv += [str(v) for v in value] if isinstance(value, tuple) else [str(value)]
    return argv


# ----------------------------------------------------------------- stages and their order

@dataclass(frozen=True)
class Stage:
    """One command of the pipeline. `group` names it for `needs` (the shards of one step
    share a group); `threads` is the fixed number of cores it takes."""
    name: str
    script: str
    argv: tuple
    needs: tuple = ()
    threads: int = 1
    group: str = ""
    in_process: bool = False   # evaluations: run main(argv) in the driver, no start-up cost

    def __post_init__(self):
        if not self.group:
            object.__setattr__(self, "group", self.name)


def sharded(name, script, argv, shards, needs=(), sharded_needs=()):
    """The stage split into `shards` processes (`--shard i/n`), each a stage of group `name`.
    Shard i may wait only for shard i of `sharded_needs` (same images)."""
    if shards <= 1:
        return [Stage(name, script, tuple(argv), tuple(needs) + tuple(sharded_needs))]
    return [Stage(f"{name}.{i}", script, tuple(argv) + ("--shard", f"{i}/{shards}"),
                  tuple(needs) + tuple(f"{n}.{i}" for n in sharded_needs), group=name)
            for i in range(shards)]


def evaluation(name, ids_list, pred_dir, paths, needs, kind="png"):
    """eval_seg.py of a prediction folder against the ground truth → eval/<name>.json."""
    argv = ["--list", ids_list, "--gt_dir", paths.gt_dir, "--pred_dir", pred_dir, "--type", kind,
            "--dataset", paths.dataset, "--json_out", paths.eval_json(name), "--quiet"]
    if kind == "cam":
        argv.append("--sweep")
    return Stage(f"eval_{name}", "eval_seg.py", tuple(argv), tuple(needs), in_process=True)


@dataclass(frozen=True)
class Paths:
    """Where a run reads its data and writes its stages."""
    out: str
    root: str
    train_list: str
    val_list: str
    sal_dir: str
    gt_dir: str
    labels: str
    img_dir: str
    dataset: str = "voc"

    def __call__(self, *parts):
        return os.path.join(self.out, *parts)

    def eval_json(self, name):
        return self("eval", f"{name}.json")


# per --dataset: the training list and the ground-truth folder a prepared root holds
# (VOC with SBD: train_aug.txt, SegmentationClassAug; data/make_coco.py: train.txt,
# SegmentationClass)
LAYOUTS = {"voc": ("train_aug.txt", "SegmentationClassAug"), "coco": ("train.txt", "SegmentationClass")}
DEMO_VOC, DEMO_COCO = "demo_voc", "demo_coco"  # the generated demo before make_coco.py (coco)


def make_paths(args, out):
    root = os.path.abspath(args.voc12_root or os.path.join(out, "data"))
    train_name, gt_name = LAYOUTS[args.dataset]
    generated_sal = os.path.join(out, DEMO_COCO if args.dataset == "coco" else "data", "SAL")
    return Paths(out=out, root=root,
                 train_list=args.train_list or os.path.join(root, train_name),
                 val_list=args.val_list or os.path.join(root, "val.txt"),
                 sal_dir=args.sal_dir or (generated_sal if args.voc12_root is None
                                          else os.path.join(root, "SAL")),
                 gt_dir=os.path.join(root, gt_name),
                 labels=os.path.join(root, "cls_labels.npy"),
                 img_dir=os.path.join(root, "JPEGImages"), dataset=args.dataset)


@dataclass(frozen=True)
class Run:
    """What every pipeline part needs: the profile, the paths and the run's choices."""
    profile: Profile
    paths: Paths
    seed: int
    device: str
    cls_weights: Optional[str]     # a trained classifier: skips train_cls
    init_weights: Optional[str]    # ImageNet (or the demo's pretrained) trunk
    generate_data: bool

    @property
    def common(self):
        return ["--device", self.device] + flags(width=self.profile.width)

    def classifier_weights(self):
        return self.cls_weights or self.paths("cls", "resnet38_cls.pth")


def data_part(run):
    """The built-in demo dataset (`data`); with --dataset coco written in MS COCO 2014
    layout (data/demo_to_coco.py) and prepared from it as COCO is (data/make_coco.py)."""
    if not run.generate_data:
        return []
    p, paths = run.profile, run.paths
    coco = paths.dataset == "coco"
    voc_root = paths(DEMO_VOC) if coco else paths.root
    stages = [Stage("demo_voc" if coco else "data", "data/make_demo_dataset.py",
                    ("--root", voc_root, "--seed", str(run.seed), "--num_train", str(p.num_train),
                     "--num_val", str(p.num_val), "--workers", str(p.cores)), threads=p.cores)]
    if coco:
        stages += [Stage("demo_coco", "data/demo_to_coco.py",
                         ("--root", voc_root, "--out", paths(DEMO_COCO)), ("demo_voc",)),
                   Stage("data", "data/make_coco.py",
                         ("--coco_root", paths(DEMO_COCO), "--out", paths.root), ("demo_coco",))]
    return stages


def classifier_part(run):
    """psa: the classifier from the (pretrained) trunk, its multi-scale CAMs, CAM labels at
    background 0.2, the la/ha CRF labels for AffinityNet."""
    p, paths = run.profile, run.paths
    data = ("data",) if run.generate_data else ()
    stages = []
    if not run.cls_weights:
        stages.append(Stage(
            "train_cls", "train_cls.py",
            tuple(["--train_list", paths.train_list, "--voc12_root", paths.root,
                   "--save_dir", paths("cls"), "--seed", str(run.seed)]
                  + flags(weights=run.init_weights, crop_size=p.cls_crop,
                          resize_long=p.cls_resize_long, batch_size=p.cls_batch,
                          max_epoches=p.cls_epochs, num_workers=p.loader_workers)
                  + run.common),
            data, threads=p.trainer_threads))
    trained = ("train_cls",) if not run.cls_weights else data
    stages += sharded("infer_cls", "infer_cls.py",
                      ["--infer_list", paths.train_list, "--voc12_root", paths.root,
                       "--weights", run.classifier_weights(), "--out_cam", paths("cam"),
                       "--out_cam_pred", paths("cam_pred"), "--out_la_crf", paths("crf_la"),
                       "--out_ha_crf", paths("crf_ha"), "--num_workers", str(p.crf_workers)]
                      + run.common, p.shards, trained)
    stages.append(evaluation("cam", paths.train_list, paths("cam"), paths, ["infer_cls"], "cam"))
    return stages


def infercam_part(run):
    """InferCam on the same classifier: mass-centre crops (split by the CAMs infer_cls.py
    wrote: the same maps, not computed again), iterative erasing."""
    p, paths = run.profile, run.paths
    common = ["--infer_list", paths.train_list, "--voc12_root", paths.root,
              "--weights", run.classifier_weights(), "--split_path", paths("infercam_split")]
    clamp = ["--clamp_crops"] if p.clamp_crops else []
    stages = sharded("split_img", "split_img.py",
                     common + ["--cam_dir", paths("cam")] + clamp + run.common, p.shards,
                     sharded_needs=("infer_cls",))
    stages += sharded("infer_cam", "infer_cam.py",
                      common + ["--out_cam", paths("infercam_cam")] + run.common, p.shards,
                      sharded_needs=("split_img",))
    stages.append(evaluation("infercam", paths.train_list, paths("infercam_cam"), paths,
                             ["infer_cam"], "cam"))
    return stages


def affinity_part(run):
    """psa: AffinityNet from the trunk on the la/ha CRF labels; the random walk on the CAMs
    and on the InferCam CAMs."""
    p, paths = run.profile, run.paths
    stages = [Stage("train_aff", "train_aff.py", tuple(
        ["--train_list", paths.train_list, "--voc12_root", paths.root,
         "--la_crf_dir", paths("crf_la"), "--ha_crf_dir", paths("crf_ha"),
         "--save_dir", paths("aff"), "--seed", str(run.seed)]
        + flags(weights=run.init_weights or run.classifier_weights(), crop_size=p.aff_crop,
                batch_size=p.aff_batch, max_epoches=p.aff_epochs, num_workers=p.loader_workers)
        + run.common), ("infer_cls",))]
    for cams, name in (("cam", "rw"), ("infercam_cam", "infercam_rw")):
        made_by = "infer_cls" if cams == "cam" else "infer_cam"
        stages += sharded(name, "infer_aff.py",
                          ["--infer_list", paths.train_list, "--voc12_root", paths.root,
                           "--weights", paths("aff", "resnet38_aff.pth"), "--cam_dir",
                           paths(cams), "--out_rw", paths(name)]
                          + flags(alpha=p.rw_alpha, beta=p.rw_beta, logt=p.rw_logt,
                                  scale=p.rw_scale) + run.common,
                          p.shards, ("train_aff", made_by))
        stages.append(evaluation(name, paths.train_list, paths(name), paths, [name]))
    return stages


def aux_round_dir(run, k):
    return run.paths("aux", f"round_{k}")


def auxsegnet_part(run):
    """AuxSegNet: initial pseudo labels (CAM + saliency), rounds of training and label
    update from the classifier, predictions on the val list."""
    p, paths = run.profile, run.paths
    stages = [Stage("make_pgt", "make_pgt.py", (
        "--list", paths.train_list, "--cam_dir", paths("cam"), "--sal_dir", paths.sal_dir,
        "--cls_labels", paths.labels, "--out_dir", paths("pgt_init"), "--workers", "1"),
        ("infer_cls",))]
    stages.append(evaluation("pgt_init", paths.train_list, paths("pgt_init"), paths, ["make_pgt"]))
    train_args = flags(crop_size=p.aux_crop, batch_size=p.aux_batch, lr=p.aux_lr,
                       num_workers=p.loader_workers, seed=run.seed)
    stages.append(Stage("aux_rounds", "run_iterations.py", tuple(
        ["--rounds", str(p.aux_rounds), "--work_dir", paths("aux"), "--img_path", paths.img_dir,
         "--SALpath", paths.sal_dir, "--seg_pgt_path", paths("pgt_init"),
         "--sal_pgt_path", paths.sal_dir, "--init_weights", run.classifier_weights(),
         "--list_path", paths.train_list, "--cls_labels", paths.labels,
         "--workers", "1", "--train_args", shlex.join(train_args)]
        + flags(num_epochs=p.aux_epochs, later_epochs=p.aux_later_epochs) + run.common),
        ("make_pgt",)))
    for k in range(1, p.aux_rounds + 1):
        stages.append(evaluation(f"pgt_round{k}", paths.train_list,
                                 os.path.join(aux_round_dir(run, k), "seg_pgt"), paths,
                                 ["aux_rounds"]))
    weights = os.path.join(aux_round_dir(run, p.aux_rounds), "model", "AuxSegNet_final.pth")
    for crf, name in ((False, "aux_val"), (True, "aux_val_crf")):
        stages.append(Stage(name, "infer_AuxAff.py", (
            "--img_path", paths.img_dir, "--weights", weights, "--save_path", paths(name),
            "--list_path", paths.val_list, "--device", run.device)
            + (("--use_crf",) if crf else ()), ("aux_rounds",)))
        stages.append(evaluation(name, paths.val_list, paths(name), paths, [name]))
    return stages


SEG_SETTINGS = (("ss", ()), ("msf", ("--scales",) + tuple(map(str, MS_SCALES)) + ("--flip",)),
                ("msf_crf", ("--scales",) + tuple(map(str, MS_SCALES)) + ("--flip", "--use_crf")))
SEG_LABELS = (("refined", "infercam_rw"), ("cam", "cam_pred"))


def segmentation_part(run):
    """The final segmentation network (psa's ResNet-38 LargeFOV) from the trunk, trained on
    the refined labels (random walk on InferCam CAMs) and on the CAM labels (background
    0.2); single scale, multi-scale + flip, and + CRF on the val list."""
    p, paths = run.profile, run.paths
    made_by = {"infercam_rw": "infercam_rw", "cam_pred": "infer_cls"}
    stages = []
    for labels_name, folder in SEG_LABELS:
        weights = paths(f"seg_{labels_name}", "largefov.pth")
        stages.append(Stage(f"train_seg_{labels_name}", "train_seg.py", tuple(
            ["--model", "largefov", "--train_list", paths.train_list, "--voc12_root", paths.root,
             "--label_dir", paths(folder), "--save_path", weights, "--seed", str(run.seed)]
            + flags(init_weights=run.init_weights or run.classifier_weights(),
                    crop_size=p.seg_crop, batch_size=p.seg_batch, max_iters=p.seg_iters,
                    lr=p.seg_lr, num_workers=p.loader_workers) + run.common),
            (made_by[folder],)))
        for tag, extra in SEG_SETTINGS:
            name = f"seg_{labels_name}_{tag}"
            stages.append(Stage(name, "infer_seg.py", tuple(
                ["--model", "largefov", "--weights", weights, "--infer_list", paths.val_list,
                 "--voc12_root", paths.root, "--save_path", paths(name)] + list(extra)
                + run.common), (f"train_seg_{labels_name}",)))
            stages.append(evaluation(name, paths.val_list, paths(name), paths, [name]))
    return stages


def picture_part(run):
    """AuxSegNet's prediction on the first training images, for the picture."""
    p, paths = run.profile, run.paths
    weights = os.path.join(aux_round_dir(run, p.aux_rounds), "model", "AuxSegNet_final.pth")
    return [Stage("aux_picture", "infer_AuxAff.py", (
        "--img_path", paths.img_dir, "--weights", weights, "--save_path", paths("aux_picture"),
        "--list_path", paths("picture_ids.txt"), "--use_crf", "--device", run.device),
        ("aux_rounds",))]


PARTS = (data_part, classifier_part, auxsegnet_part, infercam_part, affinity_part,
         segmentation_part, picture_part)


def pipeline(run):
    """Every stage of a run, in the order they are started when several are ready (the
    longest chain, AuxSegNet, first)."""
    return [stage for part in PARTS for stage in part(run)]


# ----------------------------------------------------------------- running stages

class StageFailed(RunError):
    """A stage exited non-zero: one line with its last log line (its own error message)."""


def stage_module(stage):
    """The module of a stage's script (a path inside the repository)."""
    return importlib.import_module(stage.script[:-3].replace("/", "."))


def overwriting(stage):
    """The stage with --overwrite when its script (one of the repository's) has it: stage
    scripts skip outputs that exist."""
    if os.path.isabs(stage.script):
        return stage
    module = stage_module(stage)
    if any("--overwrite" in action.option_strings for action in module.build_parser()._actions):
        return replace(stage, argv=stage.argv + ("--overwrite",))
    return stage


def last_line(path):
    """The last non-empty line of a log, progress-bar redraws (carriage returns) dropped."""
    with open(path, errors="replace") as f:
        lines = [line.split("\r")[-1].strip() for line in f]
    return next((line for line in reversed(lines) if line), "(empty log)")


@dataclass
class Scheduler:
    """Runs stages as soon as their needs are done, as many at once as their threads fit
    in `cores`. Every stage has a fixed thread count, so results do not depend on timing."""
    out: str
    cores: int
    redo: tuple = ()
    timings: dict = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def marker(self, stage):
        return os.path.join(self.out, "done", stage.name)

    def redone(self, stage):
        return bool({stage.name, stage.group} & set(self.redo))

    def finished_before(self, stage):
        return os.path.exists(self.marker(stage)) and not self.redone(stage)

    def command(self, stage):
        return [sys.executable, os.path.join(REPO, stage.script), *stage.argv]

    def launch(self, stage):
        log = os.path.join(self.out, "logs", f"{stage.name}.log")
        os.makedirs(os.path.dirname(log), exist_ok=True)
        env = dict(os.environ, OMP_NUM_THREADS=str(stage.threads),
                   MKL_NUM_THREADS=str(stage.threads))
        command = self.command(stage)
        with open(log, "w") as f:
            f.write(shlex.join(command) + "\n")
            f.flush()
            return subprocess.Popen(command, cwd=REPO, env=env, stdout=f,
                                    stderr=subprocess.STDOUT), log

    def run_in_process(self, stage):
        stage_module(stage).main(list(stage.argv))

    def finish(self, stage, began, cpu):
        now = time.perf_counter()
        self.timings[stage.name] = {"start": began - self.started, "seconds": now - began,
                                    "cpu": cpu, "threads": stage.threads}
        save_text(self.marker(stage), shlex.join(self.command(stage)) + "\n")
        print(f"[{stage.name}] finished in {now - began:.1f} s", flush=True)

    def run(self, stages):
        groups = {}
        for stage in stages:
            groups.setdefault(stage.group, []).append(stage.name)
        done = {s.name for s in stages if self.finished_before(s)}
        for name in sorted(done):
            print(f"[{name}] done already, skipped", flush=True)
        waiting = [overwriting(s) if self.redone(s) else s for s in stages if s.name not in done]
        running = {}

        def ready(stage):
            return all(n in done for need in stage.needs for n in groups.get(need, [need]))

        while waiting or running:
            free = self.cores - sum(s.threads for s, *_ in running.values())
            for stage in [s for s in waiting if ready(s)]:
                if stage.threads > free and running:
                    continue
                waiting.remove(stage)
                print(f"[{stage.name}] {shlex.join([stage.script, *stage.argv])}", flush=True)
                began = time.perf_counter()
                if stage.in_process:
                    cpu = time.process_time()
                    self.run_in_process(stage)
                    self.finish(stage, began, time.process_time() - cpu)
                    done.add(stage.name)
                    break
                proc, log = self.launch(stage)
                running[stage.name] = (stage, proc, began, log)
                free -= stage.threads
            if not running and waiting and not any(ready(s) for s in waiting):
                raise StageFailed(f"stages wait for stages that never run: "
                                  f"{', '.join(s.name for s in waiting)}")
            time.sleep(POLL_SECONDS if running else 0)
            for name, (stage, proc, began, log) in list(running.items()):
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid == 0:
                    continue
                proc.returncode = os.waitstatus_to_exitcode(status)
                del running[name]
                if proc.returncode != 0:
                    for _, other, *_ in running.values():
                        other.kill()
                        other.wait()
                    raise StageFailed(f"stage {name} failed (exit {proc.returncode}): "
                                      f"{last_line(log)} (whole log: {log})")
                self.finish(stage, began, usage.ru_utime + usage.ru_stime)
                done.add(name)
        return self.timings


# ----------------------------------------------------------------- results

def load_results(run):
    """{evaluation name: eval_seg JSON} for every evaluation the run made."""
    folder = run.paths("eval")
    return {name[:-5]: load_json(os.path.join(folder, name), "evaluation result")
            for name in sorted(os.listdir(folder)) if name.endswith(".json")}


def best_miou(result):
    """A CAM's mIoU at its best background threshold, else the mIoU."""
    return result["sweep"]["best_miou"] if "sweep" in result else result["miou"]


# (key, product, split, published VOC number for orientation)
def result_rows(rounds):
    rows = [("cam", "CAM (psa multi-scale)", "train", "psa 48.0 (train, bg 0.2)"),
            ("infercam", "InferCam CAM", "train", ""),
            ("rw", "random walk on CAM", "train", "psa 59.7 (train)"),
            ("infercam_rw", "random walk on InferCam CAM", "train", ""),
            ("pgt_init", "initial pseudo labels (CAM + saliency)", "train", "")]
    rows += [(f"pgt_round{k}", f"AuxSegNet round {k} pseudo labels", "train", "")
             for k in range(1, rounds + 1)]
    rows += [("aux_val", "AuxSegNet val prediction (single scale)", "val",
              "66.1 (no post-processing)"),
             ("aux_val_crf", "AuxSegNet val prediction + CRF", "val",
              "69.0 (multi-scale + flip + CRF)")]
    for labels_name, title, paper in (("refined", "random walk on InferCam", "InferCam 70.8"),
                                      ("cam", "CAM (bg 0.2)", "")):
        rows += [(f"seg_{labels_name}_ss", f"LargeFOV on {title} labels, single scale", "val", ""),
                 (f"seg_{labels_name}_msf", f"LargeFOV on {title} labels, MS + flip", "val", ""),
                 (f"seg_{labels_name}_msf_crf", f"LargeFOV on {title} labels, MS + flip + CRF",
                  "val", paper)]
    return rows


TABLE_HEAD = ("| product | split | mIoU | best bg threshold (mIoU) | object precision / recall "
              "| published, VOC |\n| --- | --- | --- | --- | --- | --- |")


def result_table(results, rounds):
    lines = [TABLE_HEAD]
    for key, title, split, paper in result_rows(rounds):
        r = results.get(key)
        if r is None:
            continue
        sweep = r.get("sweep")
        best = "" if sweep is None else f"{sweep['best_threshold']:.2f} ({sweep['best_miou']:.1f})"
        precision, recall = object_precision_recall(r["confusion_matrix"])
        lines.append(f"| {title} | {split} | {r['miou']:.1f} | {best} | "
                     f"{precision:.1f} / {recall:.1f} | {paper} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Claim:
    paper: str
    text: str
    holds: bool
    numbers: str

    def line(self):
        return (f"- {self.paper}: {self.text} — {'holds' if self.holds else 'does not hold'}: "
                f"{self.numbers}")


def claims(results, rounds):
    """One Claim per paper claim the demo can check, from the evaluation results."""
    r = results
    cam, infercam = best_miou(r["cam"]), best_miou(r["infercam"])
    out = [Claim("psa", "random walk > CAM (at its best threshold)", r["rw"]["miou"] > cam,
                 f"{r['rw']['miou']:.1f} vs {cam:.1f}"),
           Claim("InferCam", "InferCam CAM ≥ CAM, each at its best threshold", infercam >= cam,
                 f"{infercam:.1f} (bg {r['infercam']['sweep']['best_threshold']:.2f}) vs "
                 f"{cam:.1f} (bg {r['cam']['sweep']['best_threshold']:.2f})"),
           Claim("InferCam", "random walk on InferCam CAM ≥ random walk on CAM",
                 r["infercam_rw"]["miou"] >= r["rw"]["miou"],
                 f"{r['infercam_rw']['miou']:.1f} vs {r['rw']['miou']:.1f}")]
    init, first = r["pgt_init"], r["pgt_round1"]
    (p0, r0), (p1, r1) = (object_precision_recall(x["confusion_matrix"]) for x in (init, first))
    out.append(Claim("AuxSegNet", "round-1 pseudo labels ≥ initial fusion labels",
                     first["miou"] >= init["miou"], f"{first['miou']:.1f} vs {init['miou']:.1f}"))
    out.append(Claim("AuxSegNet", "the update raises recall at a small cost in precision "
                     "(Fig. 6: recall up, precision about level)",
                     r1 > r0 and p0 - p1 < r1 - r0,
                     f"recall {r0:.1f} → {r1:.1f}, precision {p0:.1f} → {p1:.1f}"))
    refined, cam_labels = r["seg_refined_msf_crf"]["miou"], r["seg_cam_msf_crf"]["miou"]
    out.append(Claim("psa/InferCam", "segmentation net on refined labels ≥ on CAM labels "
                     "(MS + flip + CRF)", refined >= cam_labels,
                     f"{refined:.1f} vs {cam_labels:.1f}"))
    single = r["seg_refined_ss"]["miou"]
    out.append(Claim("DeepLab/psa", "multi-scale + flip + CRF ≥ single scale (refined labels)",
                     refined >= single, f"{refined:.1f} vs {single:.1f}"))
    return out


def results_text(results, rounds, profile_name, seed):
    lines = [f"Demo results (profile {profile_name}, seed {seed}); train rows score the "
             f"pseudo labels of the training images, val rows the val images.", "",
             result_table(results, rounds), "", "Claims:"]
    lines += [c.line() for c in claims(results, rounds)]
    return "\n".join(lines) + "\n"


def timings_text(timings, wall, cores):
    """Per-stage seconds (start offset, duration, threads) and how busy the cores were."""
    lines = ["| stage | starts at (s) | seconds | CPU seconds | threads |",
             "| --- | --- | --- | --- | --- |"]
    for name, t in sorted(timings.items(), key=lambda kv: kv[1]["start"]):
        lines.append(f"| {name} | {t['start']:.1f} | {t['seconds']:.1f} | {t['cpu']:.1f} | "
                     f"{t['threads']} |")
    cpu = sum(t["cpu"] for t in timings.values())
    lines += ["", f"wall {wall:.0f} s on {cores} cores; CPU {cpu:.0f} s "
                  f"({100 * cpu / max(wall * cores, 1e-9):.0f} % of the cores' time); "
                  f"machine {machine()}"]
    return "\n".join(lines) + "\n"


def write_timings(path, timings, wall, cores):
    """timings.md of this invocation; one that ran no stage (every stage finished before)
    leaves the file of the run that did the work."""
    if timings:
        save_text(path, timings_text(timings, wall, cores))


def machine():
    return (f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"load {os.getloadavg()[0]:.1f}")


# ----------------------------------------------------------------- picture

def picture(run):
    """Grid: image, ground truth, CAM, InferCam CAM, random walk on InferCam, initial and
    final pseudo labels, AuxSegNet prediction."""
    rounds = run.profile.aux_rounds
    paths = run.paths
    columns = (("CAM", "cam"), ("InferCam CAM", "infercam_cam"),
               ("random walk (InferCam)", "infercam_rw"), ("initial pgt", "pgt_init"),
               (f"round {rounds} pgt", os.path.join("aux", f"round_{rounds}", "seg_pgt")),
               ("AuxSegNet + CRF", "aux_picture"))
    rows = []
    for img_id in read_image_list(paths("picture_ids.txt")):
        rgb = read_image(find_image(paths.img_dir, img_id))
        row = [rgb, colorize_label(read_label_png(find_label(paths.gt_dir, img_id)))]
        for _, folder in columns:
            if folder.endswith("cam"):
                row.append(cam_dict_overlay(rgb, load_cam_dict(paths(folder, img_id + ".npy"))))
            else:
                row.append(colorize_label(read_label_png(paths(folder, img_id + ".png"))))
        rows.append(row)
    path = paths("demo_grid.png")
    save_rgb(path, image_grid(rows, ["image", "ground truth"] + [c for c, _ in columns]))
    return path


# ----------------------------------------------------------------- seeds

def mean_std(values):
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def seeds_text(per_seed, rounds):
    """Mean ± sample std over seeds of every row, then every claim on each seed."""
    seeds = sorted(per_seed)
    lines = [f"Demo over seeds {', '.join(map(str, seeds))}: mean ± std (sample std over "
             f"{len(seeds)} runs) of mIoU; CAM rows also at their best threshold.", "",
             "| product | split | mIoU | best-threshold mIoU | " + " | ".join(
                 f"seed {s}" for s in seeds) + " |",
             "| --- | --- | --- | --- | " + " | ".join("---" for _ in seeds) + " |"]
    for key, title, split, _ in result_rows(rounds):
        if not all(key in per_seed[s] for s in seeds):
            continue
        mious = [per_seed[s][key]["miou"] for s in seeds]
        m, sd = mean_std(mious)
        best = ""
        if "sweep" in per_seed[seeds[0]][key]:
            bm, bsd = mean_std([best_miou(per_seed[s][key]) for s in seeds])
            best = f"{bm:.1f} ± {bsd:.1f}"
        lines.append(f"| {title} | {split} | {m:.1f} ± {sd:.1f} | {best} | "
                     + " | ".join(f"{v:.1f}" for v in mious) + " |")
    lines += ["", "Claims per seed:"]
    for s in seeds:
        lines += [f"seed {s}:"] + [c.line() for c in claims(per_seed[s], rounds)]
    holding = [all(c.holds for c in claims(per_seed[s], rounds)) for s in seeds]
    lines += ["", f"all claims hold on {sum(holding)} of {len(seeds)} seeds"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- driver

def build_parser():
    p = script_parser(__doc__)
    p.add_argument("--profile", choices=sorted(PROFILES), default="demo")
    p.add_argument("--out", default="demo_out", help="all stage folders go here")
    p.add_argument("--dataset", choices=sorted(LAYOUTS), default="voc",
                   help="coco: the demo is written in MS COCO 2014 layout (80 classes, "
                        "non-contiguous category ids) and prepared by data/make_coco.py; with "
                        "--voc12_root, a folder data/make_coco.py wrote (give --sal_dir)")
    p.add_argument("--voc12_root", default=None,
                   help="VOC-layout dataset (default for the demo: <out>/data, generated)")
    p.add_argument("--sal_dir", default=None, help="off-the-shelf saliency maps (default: <root>/SAL)")
    p.add_argument("--train_list", default=None, help="default: <root>/train_aug.txt")
    p.add_argument("--val_list", default=None, help="default: <root>/val.txt")
    p.add_argument("--cls_weights", default=None,
                   help="a trained classifier (e.g. psa's res38_cls.pth): skips train_cls")
    p.add_argument("--init_weights", default=None,
                   help="trunk weights every network starts from: ImageNet ResNet-38 (MXNet "
                        ".params or .pth); the demo's default is its pretrained backbone "
                        f"{PRETRAINED}")
    p.add_argument("--seed", type=int, default=0, help="dataset and training seed")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="run once per seed into <out>/seed_<s>/ and add <out>/seeds.md "
                        "(mean ± std of every row, the claims on each seed)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--cores", type=positive_int, default=None,
                   help="cores the stages share (default: the profile's; the demo: 2)")
    p.add_argument("--redo", nargs="*", default=[], help="stages to run again")
    p.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE", type=assignment,
                   help="change profile numbers, e.g. cls_epochs=4 cls_resize_long=96,160 "
                        "(experiments; the README's numbers use none)")
    return p


def assignment(text):
    """argparse type of --set: FIELD=VALUE with a Profile field and a Python literal."""
    name, _, value = text.partition("=")
    names = {f.name for f in fields(Profile)}
    if name not in names:
        raise argparse.ArgumentTypeError(f"{name!r} is not a profile field ({', '.join(sorted(names))})")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not a number or tuple") from None


def make_run(args, out, seed):
    profile = replace(PROFILES[args.profile], **dict(args.set))
    if args.cores:
        profile = replace(profile, cores=args.cores, shards=min(profile.shards, args.cores),
                          trainer_threads=min(profile.trainer_threads, args.cores))
    init = args.init_weights
    if init is None and args.profile == "demo":
        init = os.path.join(REPO, PRETRAINED)
    return Run(profile=profile, paths=make_paths(args, out), seed=seed, device=args.device,
               cls_weights=args.cls_weights, init_weights=init,
               generate_data=args.voc12_root is None)


def picture_ids(run):
    """The first training images (known before the demo data exists: ids are numbered)."""
    if run.generate_data:
        ids = [demo_id(k) for k in range(1, PICTURE_IMAGES + 1)]
        if run.paths.dataset == "coco":
            return [coco_file_stem("train", coco_image_id(i, "demo ids")) for i in ids]
        return ids
    return read_image_list(run.paths.train_list)[:PICTURE_IMAGES]


def run_one(args, out, seed):
    """One whole run into `out`: stages, results.md, timings.md, demo_grid.png."""
    run = make_run(args, os.path.abspath(out), seed)
    os.makedirs(run.paths("done"), exist_ok=True)
    save_text(run.paths("picture_ids.txt"), "\n".join(picture_ids(run)) + "\n")
    scheduler = Scheduler(run.paths.out, run.profile.cores, tuple(args.redo))
    scheduler.run(pipeline(run))
    wall = time.perf_counter() - scheduler.started
    results = load_results(run)
    text = results_text(results, run.profile.aux_rounds, args.profile, seed)
    save_text(run.paths("results.md"), text)
    write_timings(run.paths("timings.md"), scheduler.timings, wall, run.profile.cores)
    grid = picture(run)
    print("\n" + text)
    print(f"run_demo: finished in {wall:.0f} s; table {run.paths('results.md')}, timings "
          f"{run.paths('timings.md')}, picture {grid}")
    return results


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_output_folder(args.out, "--out")
    if args.seeds is None:
        run_one(args, args.out, args.seed)
        return
    per_seed = {s: run_one(args, os.path.join(args.out, f"seed_{s}"), s) for s in args.seeds}
    text = seeds_text(per_seed, PROFILES[args.profile].aux_rounds)
    save_text(os.path.join(args.out, "seeds.md"), text)
    print("\n" + text)


if __name__ == "__main__":
    run_main(main)
