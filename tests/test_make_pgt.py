"""make_pgt.py on a tiny synthetic folder: fusion result, skip/overwrite, workers, errors."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import make_pgt
from golden import REPO
from tool.core.io import InputError, save_gray_png, save_npy

H, W = 4, 6
DOG = 11  # 0-based VOC class; label value 12
# CAM on columns 0-2, saliency on columns 0, 1 and 4:
# both -> class, one of the two -> 255, neither -> 0
EXPECTED_ROW = [DOG + 1, DOG + 1, 255, 0, 255, 0]


def write_case(root, img_id, cams, sal, label):
    save_npy(root / "cam" / f"{img_id}.npy", cams)
    save_gray_png(root / "sal" / f"{img_id}.png", sal)
    labels_path = root / "cls_labels.npy"
    labels = np.load(labels_path, allow_pickle=True).item() if labels_path.exists() else {}
    labels[img_id] = label
    np.save(labels_path, labels)


@pytest.fixture
def folder(tmp_path):
    cam = np.zeros((H, W), np.float32)
    cam[:, :3] = 0.9
    sal = np.zeros((H, W), np.uint8)
    sal[:, [0, 1, 4]] = 200
    label = np.zeros(20, np.float32)
    label[DOG] = 1
    for img_id in ("2007_000001", "2007_000002"):
        write_case(tmp_path, img_id, {DOG: cam}, sal, label)
    (tmp_path / "list.txt").write_text("/JPEGImages/2007_000001.jpg /SegmentationClassAug/"
                                       "2007_000001.png\n2007_000002\n")
    return tmp_path


def argv(root, *extra):
    return ["--list", str(root / "list.txt"), "--cam_dir", str(root / "cam"),
            "--sal_dir", str(root / "sal"), "--cls_labels", str(root / "cls_labels.npy"),
            "--out_dir", str(root / "out"), *extra]


def read_png(path):
    img = Image.open(path)
    assert img.mode == "P"
    return np.asarray(img)


def read_png_any(path):
    return np.asarray(Image.open(path))


def test_writes_fused_palette_pngs(folder):
    summary = make_pgt.main(argv(folder))
    assert summary["written"] == 2 and summary["skipped"] == 0
    for img_id in ("2007_000001", "2007_000002"):
        np.testing.assert_array_equal(read_png(folder / "out" / f"{img_id}.png"),
                                      np.tile(EXPECTED_ROW, (H, 1)))
    assert summary["object_pixels"] == 2 * 2 * H and summary["ignore_pixels"] == 2 * 2 * H


def test_skips_existing_unless_overwrite(folder):
    make_pgt.main(argv(folder))
    target = folder / "out" / "2007_000002.png"
    save_gray_png(target, np.full((H, W), 7, np.uint8))
    assert make_pgt.main(argv(folder))["skipped"] == 2
    assert (read_png_any(target) == 7).all()
    assert make_pgt.main(argv(folder, "--overwrite"))["written"] == 2
    np.testing.assert_array_equal(read_png(target), np.tile(EXPECTED_ROW, (H, 1)))


def test_workers_give_the_same_labels(folder):
    make_pgt.main(argv(folder))
    first = read_png(folder / "out" / "2007_000001.png")
    os.rename(folder / "out", folder / "out_inline")
    make_pgt.main(argv(folder, "--workers", "2"))
    np.testing.assert_array_equal(read_png(folder / "out" / "2007_000001.png"), first)


def test_thresholds_are_flags(folder):
    make_pgt.main(argv(folder, "--sal_threshold", "0.9"))
    out = read_png(folder / "out" / "2007_000001.png")
    assert set(np.unique(out).tolist()) == {0, 255}


def test_wrong_size_saliency_names_the_file(folder):
    bad = folder / "sal" / "2007_000002.png"
    save_gray_png(bad, np.zeros((H + 1, W), np.uint8))
    with pytest.raises(InputError, match="2007_000002.png.*5x6"):
        make_pgt.main(argv(folder))


def test_class_outside_image_label_names_the_cam_file(folder):
    save_npy(folder / "cam" / "2007_000001.npy", {3: np.zeros((H, W), np.float32)})
    with pytest.raises(InputError, match="2007_000001.npy.*class 3"):
        make_pgt.main(argv(folder))


def test_command_line_error_is_one_line_and_exit_2(folder):
    (folder / "cam" / "2007_000001.npy").unlink()
    proc = subprocess.run([sys.executable, str(REPO / "make_pgt.py"), *argv(folder)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "2007_000001.npy: CAM file not found" in proc.stderr
