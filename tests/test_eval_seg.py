"""eval_seg.py end to end: real VOC masks, a hand-counted perturbation, CAM mode with a
known threshold, the one-pass sweep, settings.json echo and one-line input errors."""
import json
import shutil

import numpy as np
import pytest

import eval_seg
from golden import TESTDATA
from tool.core.cli import run_main
from tool.core.io import InputError, read_label_png, save_label_png, save_npy
from tool.data.classes import segmentation_class_names
from tool.seg import evaluate

VOC_REAL = TESTDATA / "voc_real"
VOC_MASKS = VOC_REAL / "SegmentationClass"
needs_voc_masks = pytest.mark.skipif(not VOC_MASKS.is_dir(),
                                     reason=f"real VOC masks {VOC_MASKS} are absent")
SETTINGS = {"stage": "infer_seg", "scales": [1.0, 0.5, 1.5], "flip": True, "crf": False}


def write_list(path, ids, psa_pairs=False):
    lines = [f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png" if psa_pairs else i for i in ids]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def voc_ids():
    return sorted(p.stem for p in VOC_MASKS.glob("*.png"))


@needs_voc_masks
def test_gt_against_itself_is_perfect(tmp_path):
    out = tmp_path / "scores.json"
    eval_seg.main(["--list", write_list(tmp_path / "l.txt", voc_ids(), psa_pairs=True),
                   "--voc12_root", str(VOC_REAL), "--pred_dir", str(VOC_MASKS),
                   "--json_out", str(out), "--quiet"])
    result = json.loads(out.read_text())
    assert result["num_images"] == 8 and result["miou"] == 100.0
    assert result["pixel_accuracy"] == 100.0 and result["iou"]["aeroplane"] is None


@needs_voc_masks
def test_known_perturbation(tmp_path):
    ids = voc_ids()
    pred_dir = tmp_path / "pred"
    shutil.copytree(VOC_MASKS, pred_dir)
    gts = {i: read_label_png(VOC_MASKS / f"{i}.png") for i in ids}
    first = gts[ids[0]]
    cls = int(max(set(np.unique(first).tolist()) - {0, 255}))
    pred = first.copy()
    pred[first == cls] = 0  # n pixels of `cls` become background
    pred[first == 255] = 5  # predictions on ignored pixels must not count
    save_label_png(pred_dir / f"{ids[0]}.png", pred)
    n = int((first == cls).sum())
    total = {c: sum(int((g == c).sum()) for g in gts.values()) for c in (0, cls)}
    present = set().union(*(np.unique(g).tolist() for g in gts.values())) - {255}
    iou_cls = 100 * (total[cls] - n) / total[cls]
    iou_bg = 100 * total[0] / (total[0] + n)
    expected = (100 * (len(present) - 2) + iou_cls + iou_bg) / len(present)
    result = evaluate.evaluate_folder(ids, VOC_MASKS, pred_dir)
    name = segmentation_class_names(20)[cls]
    assert result["iou"][name] == pytest.approx(iou_cls, abs=1e-4)
    assert result["iou"]["background"] == pytest.approx(iou_bg, abs=1e-4)
    assert result["precision"][name] == 100.0
    assert result["miou"] == pytest.approx(expected, abs=1e-4)


def cam_fixture(tmp_path):
    """Image a (4x6): GT class 3 in columns 0-2 (pixel (0,0) ignored), background in 3-5.
    CAM of class 2 (label 3): 0.32 on the object, 0.28 in column 3, 0.1 in columns 4-5.
    Image b (2x3): all background, empty CAM dict."""
    gt_dir, cam_dir = tmp_path / "gt", tmp_path / "cam"
    gt = np.zeros((4, 6), np.uint8)
    gt[:, :3] = 3
    gt[0, 0] = 255
    cam = np.full((4, 6), 0.1, np.float32)
    cam[:, :3] = 0.32
    cam[:, 3] = 0.28
    save_label_png(gt_dir / "a.png", gt)
    save_npy(cam_dir / "a.npy", {2: cam})
    save_label_png(gt_dir / "b.png", np.zeros((2, 3), np.uint8))
    save_npy(cam_dir / "b.npy", {})
    return write_list(tmp_path / "l.txt", ["a", "b"]), str(gt_dir), cam_dir


def test_cam_mode_at_psa_threshold(tmp_path):
    list_path, gt_dir, cam_dir = cam_fixture(tmp_path)
    result = eval_seg.main(["--list", list_path, "--gt_dir", gt_dir, "--pred_dir", str(cam_dir),
                            "--type", "cam", "--quiet"])
    # bg 0.2: the 4 px of column 3 become label 3 (bird). Bird: TP 11, predicted 15, GT 11
    # -> 11/15. Background: GT 12 + 6 = 18, TP 8 + 6 = 14, predicted 14 -> 14/18.
    assert result["iou"]["tvmonitor"] is None
    assert result["iou"]["bird"] == pytest.approx(100 * 11 / 15, abs=1e-4)
    assert result["iou"]["background"] == pytest.approx(100 * 14 / 18, abs=1e-4)
    assert result["miou"] == pytest.approx(100 * (11 / 15 + 14 / 18) / 2, abs=1e-4)


def test_sweep_picks_the_separating_threshold(tmp_path, capsys):
    list_path, gt_dir, cam_dir = cam_fixture(tmp_path)
    (cam_dir / "settings.json").write_text(json.dumps(SETTINGS))
    out = tmp_path / "sweep.json"
    eval_seg.main(["--list", list_path, "--gt_dir", gt_dir, "--pred_dir", str(cam_dir),
                   "--type", "cam", "--sweep", "--json_out", str(out)])
    result = json.loads(out.read_text())
    sweep = result["sweep"]
    assert sweep["thresholds"] == list(evaluate.SWEEP_THRESHOLDS)
    assert sweep["best_threshold"] == 0.3 and sweep["best_miou"] == 100.0
    assert sweep["miou"][sweep["thresholds"].index(0.35)] < 100.0  # object lost above 0.32
    assert result["bg_threshold"] == 0.2 and result["miou"] < 100.0
    assert result["settings"] == SETTINGS
    printed = capsys.readouterr().out
    assert '"scales": [1.0, 0.5, 1.5]' in printed and "best bg threshold 0.30" in printed


def test_missing_prediction_names_the_file(tmp_path):
    list_path, gt_dir, cam_dir = cam_fixture(tmp_path)
    (cam_dir / "b.npy").unlink()
    with pytest.raises(InputError, match=r"b\.npy: CAM file not found"):
        eval_seg.main(["--list", list_path, "--gt_dir", gt_dir, "--pred_dir", str(cam_dir),
                       "--type", "cam", "--quiet"])


def test_wrong_size_cam_names_the_file(tmp_path):
    list_path, gt_dir, cam_dir = cam_fixture(tmp_path)
    save_npy(cam_dir / "a.npy", {2: np.zeros((4, 5), np.float32)})
    with pytest.raises(InputError, match=r"a\.npy: map of class 2 has size"):
        evaluate.evaluate_folder(["a", "b"], gt_dir, cam_dir, kind="cam")


def test_wrong_size_png_exits_with_one_line(tmp_path, capsys):
    list_path, gt_dir, _ = cam_fixture(tmp_path)
    pred_dir = tmp_path / "png"
    save_label_png(pred_dir / "a.png", np.zeros((4, 6), np.uint8))
    save_label_png(pred_dir / "b.png", np.zeros((3, 2), np.uint8))
    with pytest.raises(SystemExit) as exit_info:
        run_main(eval_seg.main, ["--list", list_path, "--gt_dir", gt_dir,
                                 "--pred_dir", str(pred_dir), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert len(err) == 1 and f"{pred_dir / 'b.png'}: label PNG has size 3x2" in err[0]


def test_sweep_needs_cam_type(tmp_path):
    list_path, gt_dir, cam_dir = cam_fixture(tmp_path)
    with pytest.raises(InputError, match="--sweep"):
        evaluate.evaluate_folder(["a"], gt_dir, cam_dir, kind="png", thresholds=[0.1])


def test_crf_dicts_use_their_keys_as_labels(tmp_path):
    list_path, gt_dir, _ = cam_fixture(tmp_path)
    crf_dir = tmp_path / "crf"
    object_score = np.zeros((4, 6), np.float32)
    object_score[:, :3] = 0.9
    save_npy(crf_dir / "a.npy", {0: 1 - object_score, 3: object_score})
    save_npy(crf_dir / "b.npy", {0: np.ones((2, 3), np.float32)})
    assert evaluate.evaluate_folder(["a", "b"], gt_dir, crf_dir, kind="crf")["miou"] == 100.0
    save_npy(crf_dir / "b.npy", {21: np.ones((2, 3), np.float32)})
    with pytest.raises(InputError, match=r"b\.npy: dict key 21 out of range"):
        evaluate.evaluate_folder(["a", "b"], gt_dir, crf_dir, kind="crf")
