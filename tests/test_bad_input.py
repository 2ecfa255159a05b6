"""A table of bad inputs across the stage scripts (issue 14): each ends with exit code 2,
one line on stderr (progress bars aside) that names the file or flag at fault, and no
file changed anywhere under the test's folders. Scripts run in this process through
`run_main(main, argv)`, exactly as their command line runs them; DataLoader and CRF-pool
workers are real processes."""
import io
import json
import os
import shutil
import sys
import tempfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import eval_seg
import gen_pgt
import infer_aff
import infer_AuxAff
import infer_cam
import infer_cls
import infer_seg
import make_pgt
import run_demo
import run_iterations
import split_img
import train_aff
import train_AuxAff
import train_cls
import train_seg
from data import make_cls_labels, make_coco, make_demo_dataset, make_train_aug
from stage_inputs import WIDTH, make_stage_inputs, run_cli, snapshot
from tool.core.checkpoint import read_checkpoint
from tool.core.cli import run_main
from tool.core.io import load_cam_dict, read_image, read_saliency, save_npy
from tool.data.voc import read_image_list

NOBODY = 65534


def strings(argv):
    return [str(a) for a in argv]


def with_flag(argv, flag, *values):
    """argv with the values of `flag` replaced (or the flag appended)."""
    argv = list(argv)
    if flag not in argv:
        return argv + [flag, *values]
    start = argv.index(flag) + 1
    stop = start
    while stop < len(argv) and not str(argv[stop]).startswith("--"):
        stop += 1
    return argv[:start] + list(values) + argv[stop:]


def nan_copy(src, dst):
    state = read_checkpoint(src)
    torch.save({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                for k, v in state.items()}, dst)


def copy_tree(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def e(tmp_path_factory):
    """The stage inputs, bad variants of them and folders earlier runs wrote."""
    root = tmp_path_factory.mktemp("bad_input")
    env = make_stage_inputs(root / "inputs")
    bad = root / "bad"
    bad.mkdir()
    e = SimpleNamespace(**{**vars(env), "bad": bad, "root": root})
    e.file = bad / "a_file"
    e.file.write_text("not a folder\n")
    for name in ("cls", "aux", "seg"):
        nan_copy(env.weights[name], bad / f"nan_{name}.pth")
    e.train_id, e.val_id = read_image_list(env.train_list)[0], read_image_list(env.val_list)[0]
    # a truncated JPEG among the training images
    e.voc_trunc = copy_tree(env.voc, bad / "voc_trunc")
    jpeg = e.voc_trunc / "JPEGImages" / f"{e.train_id}.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:300])
    # a label PNG with value 37
    e.labels37 = copy_tree(env.gt, bad / "labels37")
    label = np.array(Image.open(e.labels37 / f"{e.train_id}.png"))
    label[0, 0] = 37
    Image.fromarray(label).save(e.labels37 / f"{e.train_id}.png")
    # a 16-bit saliency map
    e.sal16 = copy_tree(env.sal, bad / "sal16")
    sal = np.array(Image.open(e.sal16 / f"{e.train_id}.png")).astype(np.uint16) * 257
    Image.fromarray(sal).save(e.sal16 / f"{e.train_id}.png")
    # CAM / CRF dicts with NaN / Inf, and a CAM dict without the image's classes
    e.cam_nan = copy_tree(env.cam, bad / "cam_nan")
    e.cam_empty = copy_tree(env.cam, bad / "cam_empty")
    for img_id in env.ids:
        cams = load_cam_dict(env.cam / f"{img_id}.npy")
        key = sorted(cams)[0]
        cams[key][0, 0] = np.nan
        save_npy(e.cam_nan / f"{img_id}.npy", cams)
        save_npy(e.cam_empty / f"{img_id}.npy", {})
    e.la_nan = copy_tree(env.la, bad / "la_nan")
    e.la_inf = copy_tree(env.la, bad / "la_inf")
    for folder, value in ((e.la_nan, np.nan), (e.la_inf, np.inf)):
        for img_id in env.ids:
            crf = load_cam_dict(env.la / f"{img_id}.npy")
            crf[0][1, 1] = value
            save_npy(folder / f"{img_id}.npy", crf)
    # a 1x1 image, and a float (mode F) image, each in a one-image list
    e.tiny = bad / "tiny"
    (e.tiny / "JPEGImages").mkdir(parents=True)
    Image.new("RGB", (1, 1), (120, 30, 200)).save(e.tiny / "JPEGImages" / "px.jpg")
    save_npy(e.tiny / "cls_labels.npy", {"px": np.eye(20, dtype=np.float32)[3]})
    (e.tiny / "list.txt").write_text("px\n")
    e.float_imgs = bad / "float_imgs"
    e.float_imgs.mkdir()
    Image.fromarray(np.ones((80, 90), np.float32)).save(e.float_imgs / f"{e.val_id}.png",
                                                         format="TIFF")
    (bad / "one_val.txt").write_text(f"{e.val_id}\n")
    # run_iterations rounds: a corrupt done.json; weights without their log
    e.iter_corrupt = bad / "iter_corrupt"
    (e.iter_corrupt / "round_1").mkdir(parents=True)
    (e.iter_corrupt / "round_1" / "done.json").write_text('{"round": 1, "weig')
    e.iter_nolog = bad / "iter_nolog"
    (e.iter_nolog / "round_1" / "model").mkdir(parents=True)
    shutil.copy(env.weights["aux"], e.iter_nolog / "round_1" / "model" / "AuxSegNet_final.pth")
    # folders written by earlier runs with the default settings
    e.cam_out, e.rw_out, e.seg_out = root / "cam_out", root / "rw_out", root / "seg_out"
    infer_cls.main(strings(infer_cls_args(e, "--out_cam", e.cam_out)))
    infer_aff.main(strings(infer_aff_args(e, "--out_rw", e.rw_out)))
    infer_seg.main(strings(infer_seg_args(e, "--save_path", e.seg_out)))
    e.cls_elsewhere = bad / "cls_other.pth"
    shutil.copy(env.weights["cls"], e.cls_elsewhere)
    # the same images labelled in an 80-class (COCO-sized) vocabulary
    e.labels80 = bad / "cls_labels80.npy"
    save_npy(e.labels80, {k: np.pad(v, (0, 60)) for k, v in env.labels.items()})
    return e


def infer_cls_args(e, *extra):
    return ["--infer_list", e.val_list, "--voc12_root", e.voc, "--weights", e.weights["cls"],
            "--width", WIDTH, "--scales", "1.0", "--device", "cpu", *extra]


def infer_aff_args(e, *extra):
    return ["--infer_list", e.val_list, "--voc12_root", e.voc, "--cam_dir", e.cam,
            "--weights", e.weights["aff"], "--width", WIDTH, "--device", "cpu", *extra]


def infer_seg_args(e, *extra):
    return ["--model", "largefov", "--weights", e.weights["seg"], "--width", WIDTH,
            "--infer_list", e.val_list, "--voc12_root", e.voc, "--device", "cpu", *extra]


def infer_aux_args(e, *extra):
    return ["--img_path", e.images, "--weights", e.weights["aux"], "--list_path", e.val_list,
            "--device", "cpu", *extra]


def split_args(e, *extra):
    return ["--infer_list", e.val_list, "--voc12_root", e.voc, "--weights", e.weights["cls"],
            "--width", WIDTH, "--scales", "1.0", "--device", "cpu", *extra]


def infer_cam_args(e, *extra):
    return ["--infer_list", e.val_list, "--voc12_root", e.voc, "--weights", e.weights["cls"],
            "--width", WIDTH, "--scales", "1.0", "--device", "cpu",
            "--split_path", e.root / "split", *extra]


def gen_pgt_args(e, *extra):
    return ["--weights", e.weights["aux"], "--img_path", e.images, "--SALpath", e.sal,
            "--seg_pgt_path", e.root / "gen_seg", "--sal_pgt_path", e.root / "gen_sal",
            "--list_path", e.train_list, "--cls_labels", e.cls_labels, "--device", "cpu", *extra]


def make_pgt_args(e, *extra):
    return ["--list", e.train_list, "--cam_dir", e.cam, "--sal_dir", e.sal,
            "--cls_labels", e.cls_labels, "--out_dir", e.root / "pgt", *extra]


def eval_args(e, *extra):
    return ["--list", e.val_list, "--gt_dir", e.gt, "--quiet", *extra]


def train_cls_args(e, *extra):
    return ["--train_list", e.train_list, "--voc12_root", e.voc, "--save_dir", e.root / "tcls",
            "--width", WIDTH, "--crop_size", "64", "--resize_long", "64", "96",
            "--batch_size", "2", "--num_workers", "0", "--max_iters", "1", "--device", "cpu",
            *extra]


def train_aff_args(e, *extra):
    return ["--train_list", e.train_list, "--voc12_root", e.voc, "--la_crf_dir", e.la,
            "--ha_crf_dir", e.ha, "--save_dir", e.root / "taff", "--crop_size", "96",
            "--batch_size", "2", "--num_workers", "0", "--max_iters", "1", "--width", WIDTH,
            "--device", "cpu", *extra]


def train_aux_args(e, *extra):
    return ["--img_path", e.images, "--seg_pgt_path", e.voc / "SegmentationClassAug",
            "--sal_pgt_path", e.sal, "--list_path", e.train_list, "--cls_labels", e.cls_labels,
            "--save_path", e.root / "taux", "--width", WIDTH, "--batch_size", "2",
            "--crop_size", "64", "--num_epochs", "1", "--max_iters", "1", "--num_workers", "0",
            "--device", "cpu", *extra]


def train_seg_args(e, *extra):
    return ["--model", "largefov", "--width", WIDTH, "--train_list", e.train_list,
            "--voc12_root", e.voc, "--label_dir", e.gt, "--crop_size", "48", "--batch_size", "2",
            "--num_workers", "0", "--max_iters", "1", "--save_path", e.root / "tseg" / "s.pth",
            "--device", "cpu", *extra]


def iterations_args(e, work_dir):
    return ["--rounds", "1", "--work_dir", work_dir, "--img_path", e.images,
            "--SALpath", e.sal, "--seg_pgt_path", e.voc / "SegmentationClassAug",
            "--sal_pgt_path", e.sal, "--init_weights", e.weights["cls"],
            "--list_path", e.train_list, "--cls_labels", e.cls_labels, "--width", WIDTH,
            "--device", "cpu", "--train_args",
            "--crop_size 64 --batch_size 2 --max_iters 1 --num_workers 0"]


def rejected_numbers(main, args, *cases, out=None):
    """CASES rows for numeric flags out of range: per (flag, values, bound) of `cases`,
    `main` run with args(e[, out flag, e.root / out folder], flag, *values) names the last
    value: "<flag>: must be <bound>, got <value>"."""
    def argv(e, flag, values):
        return args(e, *([out[0], e.root / out[1]] if out else []), flag, *values)

    rows = []
    for flag, values, bound in cases:
        values = values.split()
        rows.append((f"{main.__module__} {flag[2:]} {values[-1]}", main,
                     lambda e, flag=flag, values=values: argv(e, flag, values),
                     lambda e, message=f"{flag}: must be {bound}, got {values[-1]}": message))
    return rows


# (name, main, argv(e), what the one line must contain (a function of e))
CASES = [
    # output places that cannot take the output
    ("infer_cls out_cam is a file", infer_cls.main,
     lambda e: infer_cls_args(e, "--out_cam", e.file), lambda e: f"{e.file}: --out_cam is a file"),
    ("infer_cls out_cam under a file", infer_cls.main,
     lambda e: infer_cls_args(e, "--out_cam", e.file / "cams"),
     lambda e: f"--out_cam lies under the file {e.file}"),
    ("infer_aff out_rw is a file", infer_aff.main,
     lambda e: infer_aff_args(e, "--out_rw", e.file), lambda e: f"{e.file}: --out_rw is a file"),
    ("infer_seg save_path under a file", infer_seg.main,
     lambda e: infer_seg_args(e, "--save_path", e.file / "pred"),
     lambda e: f"--save_path lies under the file {e.file}"),
    ("infer_AuxAff out_overlay is a file", infer_AuxAff.main,
     lambda e: infer_aux_args(e, "--save_path", e.root / "aux_pred", "--out_overlay", e.file),
     lambda e: f"{e.file}: --out_overlay is a file"),
    ("make_pgt out_dir is a file", make_pgt.main,
     lambda e: with_flag(make_pgt_args(e), "--out_dir", e.file),
     lambda e: f"{e.file}: --out_dir is a file"),
    ("eval_seg json_out is a folder", eval_seg.main,
     lambda e: eval_args(e, "--pred_dir", e.seg_out, "--json_out", e.bad),
     lambda e: f"{e.bad}: --json_out is a folder"),
    ("make_cls_labels out is a folder", make_cls_labels.main,
     lambda e: ["--voc12_root", e.voc, "--train_list", e.train_list, "--val_list", e.val_list,
                "--out", e.bad], lambda e: f"{e.bad}: --out is a folder"),
    ("make_train_aug out is a folder", make_train_aug.main,
     lambda e: ["--voc12_root", e.voc, "--sbd_root", e.bad, "--out", e.bad],
     lambda e: f"{e.bad}: --out is a folder"),
    ("train_cls save_dir is a file", train_cls.main,
     lambda e: with_flag(train_cls_args(e), "--save_dir", e.file),
     lambda e: f"lies under the file {e.file}"),
    ("train_AuxAff save_path is a file", train_AuxAff.main,
     lambda e: train_aux_args(e, "--save_path", e.file),
     lambda e: f"{e.file}: --save_path is a file"),
    ("run_demo out is a file", run_demo.main, lambda e: ["--out", e.file],
     lambda e: f"{e.file}: --out is a file"),
    ("make_demo_dataset root under a file", make_demo_dataset.main,
     lambda e: ["--root", e.file / "demo"], lambda e: f"--root lies under the file {e.file}"),
    ("make_coco out is a file", make_coco.main,
     lambda e: ["--coco_root", e.bad, "--out", e.file], lambda e: f"{e.file}: --out is a file"),
    # numeric flags
    *rejected_numbers(train_cls.main, train_cls_args, ("--batch_size", "0", ">= 1"),
                      ("--batch_size", "-2", ">= 1"), ("--max_epoches", "0", ">= 1")),
    *rejected_numbers(train_aff.main, train_aff_args, ("--num_workers", "-1", ">= 0")),
    *rejected_numbers(train_AuxAff.main, train_aux_args, ("--batch_size", "-1", ">= 1")),
    ("train_AuxAff lr nan", train_AuxAff.main, lambda e: train_aux_args(e, "--lr", "nan"),
     lambda e: "--lr: expected a finite number"),
    *rejected_numbers(train_seg.main, train_seg_args, ("--batch_size", "0", ">= 1"),
                      ("--num_workers", "-1", ">= 0"), ("--save_every", "0", ">= 1")),
    ("train_seg scale_range reversed", train_seg.main,
     lambda e: train_seg_args(e, "--scale_range", "1.5", "0.5"),
     lambda e: "--scale_range: MIN 1.5 is above MAX 0.5"),
    *rejected_numbers(infer_cls.main, infer_cls_args, ("--scales", "1.0 0", "> 0"),
                      ("--scales", "-1", "> 0"), out=("--out_cam", "c")),
    *rejected_numbers(split_img.main, split_args, ("--scales", "0", "> 0"),
                      out=("--split_path", "s")),
    *rejected_numbers(infer_AuxAff.main, infer_aux_args, ("--scales", "0", "> 0"),
                      out=("--save_path", "p")),
    *rejected_numbers(infer_seg.main, infer_seg_args, ("--scales", "-0.5", "> 0"),
                      out=("--save_path", "p")),
    *rejected_numbers(infer_aff.main, infer_aff_args, ("--logt", "-1", ">= 0"),
                      out=("--out_rw", "r")),
    *rejected_numbers(gen_pgt.main, gen_pgt_args, ("--workers", "-1", ">= 0")),
    ("make_coco workers 0", make_coco.main,
     lambda e: ["--coco_root", e.bad, "--out", e.root / "coco", "--workers", "0"],
     lambda e: "--workers/--num_workers: must be >= 1, got 0"),
    *rejected_numbers(infer_cam.main, infer_cam_args, ("--erase_threshold", "0", "> 0"),
                      out=("--out_cam", "ic")),
    ("infer_cam out_cam under a file", infer_cam.main,
     lambda e: infer_cam_args(e, "--out_cam", e.file / "cams"),
     lambda e: f"--out_cam lies under the file {e.file}"),
    ("infer_cls nothing to do", infer_cls.main, lambda e: infer_cls_args(e),
     lambda e: "nothing to do: give at least one of --out_cam"),
    # images
    ("infer_cls 1x1 image", infer_cls.main,
     lambda e: with_flag(with_flag(infer_cls_args(e, "--out_cam", e.root / "c", "--scales",
                                                  "1.0", "0.5"),
                                   "--infer_list", e.tiny / "list.txt"), "--voc12_root", e.tiny),
     lambda e: f"{e.tiny / 'JPEGImages' / 'px.jpg'}: image is 1x1, empty at scale 0.5"),
    ("split_img 1x1 image", split_img.main,
     lambda e: ["--infer_list", e.tiny / "list.txt", "--voc12_root", e.tiny,
                "--weights", e.weights["cls"], "--width", WIDTH, "--device", "cpu",
                "--split_path", e.root / "s"],
     lambda e: f"{e.tiny / 'JPEGImages' / 'px.jpg'}: image is 1x1, empty at scale 0.5"),
    ("infer_seg float image", infer_seg.main,
     lambda e: with_flag(infer_seg_args(e, "--save_path", e.root / "p", "--img_dir",
                                        e.float_imgs), "--infer_list", e.bad / "one_val.txt"),
     lambda e: f"{e.float_imgs / (e.val_id + '.png')}: image has mode F"),
    ("train_cls truncated JPEG in a DataLoader worker", train_cls.main,
     lambda e: with_flag(with_flag(train_cls_args(e), "--voc12_root", e.voc_trunc),
                         "--num_workers", "1"),
     lambda e: f"{e.voc_trunc / 'JPEGImages' / (e.train_id + '.jpg')}: unreadable image"),
    ("train_seg label 37 in a DataLoader worker", train_seg.main,
     lambda e: train_seg_args(e, "--label_dir", e.labels37, "--num_workers", "1",
                              "--max_iters", "2"),
     lambda e: f"{e.labels37 / (e.train_id + '.png')}: label value 37 out of range"),
    ("make_pgt 16-bit saliency", make_pgt.main,
     lambda e: make_pgt_args(e, "--sal_dir", e.sal16),
     lambda e: f"{e.sal16 / (e.train_id + '.png')}: saliency map has mode I;16 (16-bit)"),
    ("gen_pgt 16-bit saliency", gen_pgt.main, lambda e: gen_pgt_args(e, "--SALpath", e.sal16),
     lambda e: f"{e.sal16 / (e.train_id + '.png')}: saliency map has mode I;16 (16-bit)"),
    # CAM and CRF dicts
    ("infer_aff NaN CAM", infer_aff.main,
     lambda e: infer_aff_args(e, "--out_rw", e.root / "r", "--cam_dir", e.cam_nan),
     lambda e: f"{e.cam_nan / (e.val_id + '.npy')}: map of key"),
    ("infer_aff CAM without the labelled classes", infer_aff.main,
     lambda e: infer_aff_args(e, "--out_rw", e.root / "r", "--cam_dir", e.cam_empty),
     lambda e: f"{e.cam_empty / (e.val_id + '.npy')}: CAM dict lacks class"),
    ("make_pgt NaN CAM with 2 CRF workers", make_pgt.main,
     lambda e: make_pgt_args(e, "--cam_dir", e.cam_nan, "--workers", "2"),
     lambda e: "has NaN/Inf values"),
    ("make_pgt CAM without the labelled classes", make_pgt.main,
     lambda e: make_pgt_args(e, "--cam_dir", e.cam_empty),
     lambda e: f"{e.cam_empty / (e.train_id + '.npy')}: CAM dict lacks class"),
    ("eval_seg NaN CAM", eval_seg.main,
     lambda e: eval_args(e, "--pred_dir", e.cam_nan, "--type", "cam"),
     lambda e: f"{e.cam_nan / (e.val_id + '.npy')}: map of key"),
    ("eval_seg Inf CRF dict", eval_seg.main,
     lambda e: eval_args(e, "--pred_dir", e.la_inf, "--type", "crf"),
     lambda e: f"{e.la_inf / (e.val_id + '.npy')}: map of key 0 has NaN/Inf values"),
    ("train_aff NaN CRF dict in a DataLoader worker", train_aff.main,
     lambda e: train_aff_args(e, "--la_crf_dir", e.la_nan, "--num_workers", "1"),
     lambda e: "map of key 0 has NaN/Inf values"),
    # checkpoints
    ("infer_cls all-NaN checkpoint", infer_cls.main,
     lambda e: with_flag(infer_cls_args(e, "--out_cam", e.root / "c"), "--weights",
                         e.bad / "nan_cls.pth"),
     lambda e: f"{e.bad / 'nan_cls.pth'}: checkpoint holds NaN/Inf values"),
    ("infer_AuxAff all-NaN checkpoint", infer_AuxAff.main,
     lambda e: ["--img_path", e.images, "--weights", e.bad / "nan_aux.pth", "--list_path",
                e.val_list, "--device", "cpu", "--save_path", e.root / "p"],
     lambda e: f"{e.bad / 'nan_aux.pth'}: checkpoint holds NaN/Inf values"),
    ("infer_seg all-NaN checkpoint", infer_seg.main,
     lambda e: ["--model", "largefov", "--weights", e.bad / "nan_seg.pth", "--width", WIDTH,
                "--infer_list", e.val_list, "--voc12_root", e.voc, "--device", "cpu",
                "--save_path", e.root / "p"],
     lambda e: f"{e.bad / 'nan_seg.pth'}: checkpoint holds NaN/Inf values"),
    ("train_cls NaN initial weights", train_cls.main,
     lambda e: train_cls_args(e, "--weights", e.bad / "nan_cls.pth"),
     lambda e: f"{e.bad / 'nan_cls.pth'}: checkpoint holds NaN/Inf values"),
    ("gen_pgt all-NaN checkpoint", gen_pgt.main,
     lambda e: with_flag(gen_pgt_args(e), "--weights", e.bad / "nan_aux.pth"),
     lambda e: f"{e.bad / 'nan_aux.pth'}: checkpoint holds NaN/Inf values"),
    # run_iterations' round records
    ("run_iterations corrupt done.json", run_iterations.main,
     lambda e: iterations_args(e, e.iter_corrupt),
     lambda e: f"{e.iter_corrupt / 'round_1' / 'done.json'}: unreadable round record"),
    ("run_iterations missing training log", run_iterations.main,
     lambda e: iterations_args(e, e.iter_nolog),
     lambda e: f"{e.iter_nolog / 'round_1' / 'model' / 'AuxSegNet_log.json'}: training log "
               "not found"),
    # an output folder written with other settings
    ("infer_seg folder written with other scales", infer_seg.main,
     lambda e: infer_seg_args(e, "--save_path", e.seg_out, "--scales", "0.75"),
     lambda e: f"{e.seg_out / 'settings.json'}: --save_path was written with scales [1.0], "
               "this run has scales [0.75]"),
    ("infer_cls folder written with other weights", infer_cls.main,
     lambda e: with_flag(infer_cls_args(e, "--out_cam", e.cam_out), "--weights",
                         e.cls_elsewhere),
     lambda e: f"{e.cam_out / 'settings.json'}: --out_cam was written with weights"),
    ("infer_cls folder written with another class count", infer_cls.main,
     lambda e: infer_cls_args(e, "--out_cam", e.cam_out, "--cls_labels", e.labels80),
     lambda e: f"{e.cam_out / 'settings.json'}: --out_cam was written with num_classes 20, "
               "this run has num_classes 80"),
    ("infer_aff folder written with another alpha", infer_aff.main,
     lambda e: infer_aff_args(e, "--out_rw", e.rw_out, "--alpha", "8"),
     lambda e: f"{e.rw_out / 'settings.json'}: --out_rw was written with alpha 16"),
]


@pytest.mark.parametrize("name, main, argv, expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(e, capsys, name, main, argv, expect):
    before = snapshot(e.root)
    code, lines = run_cli(main, argv(e), capsys)
    assert code == 2, (name, lines)
    assert len(lines) == 1 and expect(e) in lines[0], lines
    assert "Traceback" not in lines[0]
    assert snapshot(e.root) == before


def test_the_table_covers_every_script():
    scripts = {main.__module__ for _, main, _, _ in CASES}
    assert len(CASES) >= 40
    assert scripts >= {"eval_seg", "gen_pgt", "infer_aff", "infer_AuxAff", "infer_cam",
                       "infer_cls", "infer_seg", "make_pgt", "run_demo", "run_iterations",
                       "split_img", "train_aff", "train_AuxAff", "train_cls", "train_seg"}


def run_unprivileged(main, argv):
    """(exit code, stderr) of run_main(main, argv) in a forked child that runs as the
    user nobody (as root, read-only permissions would not stop anything)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        code = 0
        try:
            os.close(read_end)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            sys.stderr = io.StringIO()
            run_main_code = None
            try:
                run_main(main, strings(argv))
            except SystemExit as exc:
                run_main_code = exc.code
            os.write(write_end, sys.stderr.getvalue().encode())
            code = 0 if run_main_code is None else run_main_code
        except BaseException:  # noqa: BLE001 - report anything as exit 99
            code = 99
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        err = pipe.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), err


@pytest.fixture
def read_only_dir(tmp_path_factory):
    """A read-only folder inside a folder every user may enter."""
    top = tempfile.mkdtemp(prefix="read_only_case_")
    os.chmod(top, 0o755)
    folder = os.path.join(top, "ro")
    os.mkdir(folder, 0o555)
    os.chmod(folder, 0o555)
    yield folder
    shutil.rmtree(top)


@pytest.mark.parametrize("main, argv, flag", [
    (eval_seg.main, lambda ro: ["--list", "l.txt", "--gt_dir", "g", "--pred_dir", "p",
                                "--json_out", os.path.join(ro, "r.json")], "--json_out"),
    (train_seg.main, lambda ro: ["--train_list", "l.txt", "--label_dir", "x",
                                 "--save_path", os.path.join(ro, "w", "s.pth")], "--save_path"),
    (run_iterations.main, lambda ro: ["--work_dir", os.path.join(ro, "it"), "--img_path", "i",
                                      "--SALpath", "s", "--seg_pgt_path", "a",
                                      "--sal_pgt_path", "b", "--init_weights", "w"],
     "--work_dir"),
], ids=["eval_seg json_out", "train_seg save_path", "run_iterations work_dir"])
def test_read_only_output_is_one_line(read_only_dir, main, argv, flag, capsys):
    if os.geteuid() == 0:
        code, err = run_unprivileged(main, argv(read_only_dir))
    else:
        code, lines = run_cli(main, argv(read_only_dir), capsys)
        err = "\n".join(lines)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert f"{flag} is not writable ({read_only_dir} is read-only)" in lines[0]
    assert os.listdir(read_only_dir) == []


def test_16bit_image_is_converted_not_clipped(tmp_path):
    grey = (np.arange(64 * 48).reshape(48, 64) * 21 % 65536).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    rgb = read_image(tmp_path / "g16.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3)
    np.testing.assert_array_equal(rgb[..., 0], grey >> 8)  # the high byte, as PIL for RGB 16
    assert (rgb == 255).mean() < 0.01  # clipping would make most pixels white
    with pytest.raises(Exception, match="16-bit"):
        read_saliency(tmp_path / "g16.png")


def test_image_without_a_labelled_class_is_skipped_and_counted(e, tmp_path, capsys):
    """One rule in every stage (tool.data.classes.labelled_images): no output, one count."""
    labels = dict(e.labels)
    no_class = read_image_list(e.val_list)[1]
    labels[no_class] = np.zeros(20, np.float32)
    save_npy(tmp_path / "cls_labels.npy", labels)
    argv = infer_cls_args(e, "--cls_labels", tmp_path / "cls_labels.npy", "--out_cam",
                          tmp_path / "cam", "--out_la_crf", tmp_path / "la", "--out_cam_pred",
                          tmp_path / "pred")
    infer_cls.main(strings(argv))
    out = capsys.readouterr().out
    assert "1 images computed" in out and "1 without a labelled class skipped" in out
    assert not (tmp_path / "cam" / f"{no_class}.npy").exists()
    assert not (tmp_path / "pred" / f"{no_class}.png").exists()
    assert (tmp_path / "la" / f"{e.val_id}.npy").is_file()
    # downstream stages skip it too (it has no CAM to read) and count it once
    infer_aff.main(strings(infer_aff_args(
        e, "--cls_labels", tmp_path / "cls_labels.npy", "--cam_dir", tmp_path / "cam",
        "--out_rw", tmp_path / "rw")))
    out = capsys.readouterr().out
    assert "1 images computed" in out and "1 without a labelled class skipped" in out
    assert not (tmp_path / "rw" / f"{no_class}.png").exists()
    assert (tmp_path / "rw" / f"{e.val_id}.png").is_file()
    (tmp_path / "one.txt").write_text(f"{no_class}\n")
    result = make_pgt.main(strings(["--list", tmp_path / "one.txt", "--cam_dir",
                                    tmp_path / "cam", "--sal_dir", e.sal, "--cls_labels",
                                    tmp_path / "cls_labels.npy", "--out_dir", tmp_path / "pgt"]))
    assert result["written"] == 0 and result["unlabelled"] == 1
    assert "1 without a labelled class skipped" in capsys.readouterr().out
    assert not (tmp_path / "pgt" / f"{no_class}.png").exists()


def test_overwrite_accepts_other_settings(e, tmp_path):
    folder = tmp_path / "seg"
    infer_seg.main(strings(infer_seg_args(e, "--save_path", folder)))
    infer_seg.main(strings(infer_seg_args(e, "--save_path", folder, "--scales", "0.75",
                                          "--overwrite")))
    assert json.loads((folder / "settings.json").read_text())["scales"] == [0.75]
