"""Every stage in COCO mode (81 classes, no class flag) at width 0.125 on a tiny COCO 2014
layout prepared by data/make_coco.py: train_cls -> infer_cls -> split_img -> infer_cam ->
train_aff -> infer_aff -> make_pgt -> train_AuxAff -> gen_pgt -> infer_AuxAff ->
run_iterations -> train_seg -> infer_seg -> eval_seg. The lists keep the images without
any annotation, which every stage that reads image labels skips and counts; class flags
that contradict the data fail with one line."""

import numpy as np
import pytest

import eval_seg
import gen_pgt
import infer_aff
import infer_AuxAff
import infer_cam
import infer_cls
import infer_seg
import make_pgt
import run_iterations
import split_img
import train_aff
import train_AuxAff
import train_cls
import train_seg
from coco_data import make_coco_layout
from data import make_coco
from stage_inputs import run_main_captured
from tool.core.cli import run_main
from tool.core.io import InputError, load_cam_dict, read_label_png
from tool.data.coco import COCO_CLASSES
from tool.data.voc import load_cls_labels, read_image_list

WIDTH = ["--width", "0.125"]
CPU = ["--device", "cpu"]
UNLABELLED = "COCO_train2014_000000000004"
SKIPPED = "1 without a labelled class skipped"




@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """Every stage once, in order; {stage: printed text} and the folders."""
    tmp = tmp_path_factory.mktemp("coco_pipeline")
    raw = make_coco_layout(tmp / "raw", tmp / "SAL")
    root = tmp / "coco"
    make_coco.main(["--coco_root", str(raw), "--out", str(root), "--keep_unlabelled"])
    d = {"root": root, "sal": tmp / "SAL", "train": root / "train.txt", "val": root / "val.txt",
         "labels": root / "cls_labels.npy", "images": root / "JPEGImages"}
    d.update({name: tmp / name for name in (
        "cls", "cam", "la", "ha", "split", "heat", "infercam", "aff", "rw", "pgt", "aux",
        "aux_seg", "aux_sal", "aux_pred", "iter", "seg.pth", "seg_pred")})
    data = ["--voc12_root", root]
    printed = {}
    _, printed["train_cls"] = run_main_captured(train_cls, [
        "--train_list", d["train"], *data, "--save_dir", d["cls"], "--crop_size", 64,
        "--resize_long", 64, 96, "--batch_size", 2, "--num_workers", 0, "--max_iters", 2,
        *WIDTH, *CPU])
    weights = d["cls"] / "resnet38_cls.pth"
    _, printed["infer_cls"] = run_main_captured(infer_cls, [
        "--infer_list", d["train"], *data, "--weights", weights, "--out_cam", d["cam"],
        "--out_la_crf", d["la"], "--out_ha_crf", d["ha"], *WIDTH, *CPU])
    _, printed["split_img"] = run_main_captured(split_img, [
        "--infer_list", d["train"], *data, "--weights", weights, "--split_path", d["split"],
        "--heatmap", d["heat"], *WIDTH, *CPU])
    _, printed["infer_cam"] = run_main_captured(infer_cam, [
        "--infer_list", d["train"], *data, "--weights", weights, "--split_path", d["split"],
        "--out_cam", d["infercam"], "--max_rounds", 2, *WIDTH, *CPU])
    _, printed["train_aff"] = run_main_captured(train_aff, [
        "--train_list", d["train"], *data, "--la_crf_dir", d["la"], "--ha_crf_dir", d["ha"],
        "--crop_size", 72, "--batch_size", 2, "--max_iters", 1, "--num_workers", 0,
        "--save_dir", d["aff"], *WIDTH, *CPU])
    _, printed["infer_aff"] = run_main_captured(infer_aff, [
        "--infer_list", d["train"], *data, "--weights", d["aff"] / "resnet38_aff.pth",
        "--cam_dir", d["infercam"], "--out_rw", d["rw"], *WIDTH, *CPU])
    printed["make_pgt_result"], printed["make_pgt"] = run_main_captured(make_pgt, [
        "--list", d["train"], "--cam_dir", d["cam"], "--sal_dir", d["sal"],
        "--cls_labels", d["labels"], "--out_dir", d["pgt"]])
    aux = ["--img_path", d["images"], "--list_path", d["train"], "--cls_labels", d["labels"]]
    _, printed["train_AuxAff"] = run_main_captured(train_AuxAff, [
        *aux, "--seg_pgt_path", d["pgt"], "--sal_pgt_path", d["sal"], "--save_path", d["aux"],
        "--init_weights", weights, "--batch_size", 2, "--crop_size", 64, "--max_iters", 1,
        "--num_workers", 0, *WIDTH, *CPU])
    aux_weights = d["aux"] / "AuxSegNet_final.pth"
    _, printed["gen_pgt"] = run_main_captured(gen_pgt, [
        *aux, "--weights", aux_weights, "--SALpath", d["sal"], "--seg_pgt_path", d["aux_seg"],
        "--sal_pgt_path", d["aux_sal"], *CPU])
    _, printed["infer_AuxAff"] = run_main_captured(infer_AuxAff, [
        "--img_path", d["images"], "--weights", aux_weights, "--save_path", d["aux_pred"],
        "--list_path", d["val"], *CPU])
    result, printed["run_iterations"] = run_main_captured(run_iterations, [
        *aux, "--rounds", 1, "--work_dir", d["iter"], "--SALpath", d["sal"],
        "--seg_pgt_path", d["pgt"], "--sal_pgt_path", d["sal"], "--init_weights", weights,
        "--gt_dir", root / "SegmentationClass", *WIDTH, *CPU,
        "--train_args", "--crop_size 64 --batch_size 2 --max_iters 1 --num_workers 0"])
    printed["run_iterations_result"] = result
    _, printed["train_seg"] = run_main_captured(train_seg, [
        "--model", "largefov", "--train_list", d["train"], *data, "--label_dir", d["rw"],
        "--save_path", d["seg.pth"], "--init_weights", weights, "--batch_size", 2,
        "--crop_size", 64, "--max_iters", 1, "--num_workers", 0, *WIDTH, *CPU])
    _, printed["infer_seg"] = run_main_captured(infer_seg, [
        "--model", "largefov", "--weights", d["seg.pth"], "--infer_list", d["val"], *data,
        "--save_path", d["seg_pred"], *WIDTH, *CPU])
    printed["eval_seg_result"], printed["eval_seg"] = run_main_captured(eval_seg, [
        "--list", d["val"], *data, "--pred_dir", d["seg_pred"]])
    d["printed"] = printed
    return d


def test_make_coco_lists_keep_the_unlabelled_image(coco):
    train = read_image_list(coco["train"])
    assert len(train) == 7 and UNLABELLED in train
    assert not load_cls_labels(coco["labels"])[UNLABELLED].any()


def test_classifier_cams_have_80_classes(coco):
    labels = load_cls_labels(coco["labels"])
    for img_id in read_image_list(coco["train"]):
        present = np.flatnonzero(labels[img_id]).tolist()
        for folder in ("cam", "infercam"):
            path = coco[folder] / f"{img_id}.npy"
            assert path.is_file() == bool(present)
            if present:
                assert sorted(load_cam_dict(path, labels[img_id])) == present
        if present:
            assert sorted(load_cam_dict(coco["la"] / f"{img_id}.npy")) == [0] + \
                [c + 1 for c in present]
    cams = load_cam_dict(coco["cam"] / "COCO_train2014_000000000001.npy")
    assert sorted(cams) == [0, 79]  # person and toothbrush (COCO category ids 1 and 90)
    assert (coco["heat"] / "COCO_train2014_000000000003_stop_sign.jpg").is_file()
    for stage in ("infer_cls", "split_img", "infer_cam"):
        assert SKIPPED in coco["printed"][stage], stage
    assert "(80 classes; images: 1 without a labelled class skipped)" in \
        coco["printed"]["train_cls"]


def test_walk_and_pseudo_labels_use_coco_label_values(coco):
    for stage in ("infer_aff", "make_pgt", "gen_pgt"):
        assert SKIPPED in coco["printed"][stage], stage
    assert coco["printed"]["make_pgt_result"]["unlabelled"] == 1
    for folder in ("rw", "pgt", "aux_seg"):
        written = sorted(p.stem for p in coco[folder].glob("*.png"))
        assert len(written) == 6 and UNLABELLED not in written, folder
    rw = read_label_png(coco["rw"] / "COCO_train2014_000000000001.png", 81)
    assert set(np.unique(rw)) <= {0, 1, 80}
    assert "without a labelled class skipped" in coco["printed"]["train_aff"]


def test_auxsegnet_and_segmentation_networks_have_81_classes(coco):
    assert "1 without a labelled class skipped" in coco["printed"]["train_AuxAff"]
    assert "6 images, 81 classes with background (1 without a labelled class skipped)" in \
        coco["printed"]["train_seg"]
    for folder in ("aux_pred", "seg_pred"):
        preds = sorted(coco[folder].glob("*.png"))
        assert len(preds) == 3
        assert all(read_label_png(p, 81).max() <= 80 for p in preds)
    record = coco["printed"]["run_iterations_result"][0]
    assert 0 <= record["scores"]["miou"] <= 100


def test_eval_seg_prints_the_coco_table(coco):
    result, text = coco["printed"]["eval_seg_result"], coco["printed"]["eval_seg"]
    assert result["num_classes"] == 81
    assert result["class_names"] == ["background", *COCO_CLASSES]
    lines = text.splitlines()
    rows = [line.split()[0] for line in lines if line.split()]
    assert "toothbrush" in rows and "dog" in rows and "traffic" in rows
    assert any(line.startswith("mIoU") for line in lines)
    assert text.strip().splitlines()[-1].startswith("eval_seg: 3 images (png): mIoU ")


def test_class_flags_that_contradict_the_data_fail_in_one_line(coco, capsys):
    base = ["--infer_list", coco["train"], "--voc12_root", coco["root"], "--weights",
            coco["cls"] / "resnet38_cls.pth", "--out_cam", coco["root"] / "unused", *WIDTH, *CPU]
    cases = [
        (infer_cls, base + ["--num_classes", "20"],
         f"{coco['labels']}: holds 80 foreground classes, but --num_classes 20 gives 20"),
        (gen_pgt, ["--weights", coco["aux"] / "AuxSegNet_final.pth", "--img_path",
                   coco["images"], "--SALpath", coco["sal"], "--seg_pgt_path", coco["root"] / "x",
                   "--sal_pgt_path", coco["root"] / "y", "--list_path", coco["train"],
                   "--cls_labels", coco["labels"], "--num_classes", "21"],
         f"{coco['labels']}: holds 80 foreground classes, but --num_classes 21 (with "
         "background) gives 20"),
        (infer_seg, ["--model", "largefov", "--weights", coco["seg.pth"], "--infer_list",
                     coco["val"], "--voc12_root", coco["root"], "--save_path",
                     coco["root"] / "z", "--dataset", "voc", *WIDTH],
         f"{coco['seg.pth']}: holds 80 foreground classes, but --dataset voc gives 20"),
        (eval_seg, ["--list", coco["val"], "--voc12_root", coco["root"], "--pred_dir",
                    coco["seg_pred"], "--num_classes", "21"],
         f"{coco['labels']}: holds 80 foreground classes, but --num_classes 21 (with "
         "background) gives 20"),
    ]
    for stage, argv, message in cases:
        with pytest.raises(SystemExit) as exc:
            run_main(stage.main, [str(a) for a in argv])
        assert exc.value.code == 2
        assert capsys.readouterr().err == f"error: {message}\n", stage.__name__
    with pytest.raises(InputError, match=r"out of range \(expected 0\.\.20 or 255\)"):
        eval_seg.main(["--list", str(coco["val"]), "--gt_dir",
                       str(coco["root"] / "SegmentationClass"), "--pred_dir",
                       str(coco["seg_pred"]), "--quiet"])
