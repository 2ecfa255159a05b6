"""VOC readers: list files, cls_labels.npy, folders, datasets; the eight real VOC images;
bad input as one-line InputErrors naming the file."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from golden import GOLDEN, TESTDATA, needs_golden
from tool.core.io import (InputError, read_image, read_label_png, save_gray_png, save_label_png,
                          save_npy)
from tool.data.voc import (NUM_CLASSES, VOC_CLASSES, VOCImageDataset, VOCSegDataset, find_image,
                           find_label, get_image_label, load_cls_labels, read_image_list,
                           read_seg_sample, voc_dirs)

VOC_REAL = TESTDATA / "voc_real"
needs_voc_real = pytest.mark.skipif(not VOC_REAL.is_dir(), reason=f"{VOC_REAL} is absent")


def assert_one_line_naming(exc_info, path):
    message = str(exc_info.value)
    assert "\n" not in message
    assert str(path) in message


def write_text(path, text):
    path.write_text(text)
    return path


def test_class_names_in_voc_order():
    assert NUM_CLASSES == 20 == len(set(VOC_CLASSES))
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[14] == "person"
    assert VOC_CLASSES[-1] == "tvmonitor"


def test_read_image_list_formats(tmp_path):
    bare = write_text(tmp_path / "ids.txt", "2007_000032\n\n  2008_000002  \nabc\n")
    pairs = write_text(tmp_path / "psa.txt",
                       "/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png\n"
                       "\n/JPEGImages/COCO_val2014_000000000042.jpg "
                       "/SegmentationClassAug/COCO_val2014_000000000042.png\n")
    assert read_image_list(bare) == ["2007_000032", "2008_000002", "abc"]
    assert read_image_list(pairs) == ["2007_000032", "COCO_val2014_000000000042"]


@needs_golden
def test_golden_dataset_lists_in_both_formats_agree():
    dataset = GOLDEN / "dataset"
    ids = read_image_list(dataset / "list_psa.txt")
    assert ids == read_image_list(dataset / "list_ids.txt") and len(ids) == 4
    labels = load_cls_labels(dataset / "cls_labels.npy")
    np.testing.assert_array_equal(np.flatnonzero(labels["2007_000004"]), [0, 7, 19])


def test_read_image_list_bad_input(tmp_path):
    empty = write_text(tmp_path / "empty.txt", "\n  \n")
    with pytest.raises(InputError) as exc:
        read_image_list(empty)
    assert_one_line_naming(exc, empty)
    with pytest.raises(InputError) as exc:
        read_image_list(tmp_path / "missing.txt")
    assert_one_line_naming(exc, tmp_path / "missing.txt")


def test_load_cls_labels_round_trip_and_errors(tmp_path):
    good = tmp_path / "cls_labels.npy"
    save_npy(good, {"a": np.eye(20, dtype=np.float32)[3], "b": np.ones(20)})
    labels = load_cls_labels(good)
    assert set(labels) == {"a", "b"} and labels["b"].dtype == np.float32
    assert np.flatnonzero(get_image_label(labels, "a", good)).tolist() == [3]
    with pytest.raises(InputError) as exc:
        get_image_label(labels, "2007_000099", good)
    assert_one_line_naming(exc, good)
    assert "2007_000099" in str(exc.value)

    assert len(load_cls_labels(good, 20)["a"]) == 20
    coco = tmp_path / "coco.npy"
    save_npy(coco, {"COCO_val2014_000000000001": np.eye(80, dtype=np.float32)[79]})
    assert load_cls_labels(coco)["COCO_val2014_000000000001"].shape == (80,)
    with pytest.raises(InputError) as exc:
        load_cls_labels(coco, 20)
    assert_one_line_naming(exc, coco)

    mixed = tmp_path / "mixed.npy"
    save_npy(mixed, {"a": np.ones(20, np.float32), "b": np.ones(19, np.float32)})
    not_dict = tmp_path / "array.npy"
    np.save(not_dict, np.zeros((2, 20)))
    for bad in (mixed, not_dict, tmp_path / "absent.npy"):
        with pytest.raises(InputError) as exc:
            load_cls_labels(bad)
        assert_one_line_naming(exc, bad)


def test_find_image_and_label(tmp_path):
    Image.new("RGB", (4, 3)).save(tmp_path / "x.png")
    Image.new("RGB", (4, 3)).save(tmp_path / "y.jpg")
    assert find_image(tmp_path, "x") == os.path.join(tmp_path, "x.png")
    assert find_image(tmp_path, "y") == os.path.join(tmp_path, "y.jpg")
    with pytest.raises(InputError) as exc:
        find_image(tmp_path, "2007_000001")
    assert_one_line_naming(exc, tmp_path / "2007_000001.jpg")
    assert "missing image" in str(exc.value)
    assert find_label(tmp_path, "x") == os.path.join(tmp_path, "x.png")
    with pytest.raises(InputError):
        find_label(tmp_path, "y")


def test_voc_dirs_prefers_aug_labels(tmp_path):
    with pytest.raises(InputError):
        voc_dirs(tmp_path)
    for name in ("JPEGImages", "SegmentationClass"):
        (tmp_path / name).mkdir()
    dirs = voc_dirs(tmp_path)
    assert dirs["labels"].endswith("SegmentationClass") and dirs["saliency"] is None
    for name in ("SegmentationClassAug", "SAL", "Annotations"):
        (tmp_path / name).mkdir()
    dirs = voc_dirs(tmp_path)
    assert dirs["labels"].endswith("SegmentationClassAug")
    assert dirs["saliency"].endswith("SAL") and dirs["annotations"].endswith("Annotations")


@needs_voc_real
def test_real_voc_images_labels_and_cls_labels():
    dirs = voc_dirs(VOC_REAL)
    ids = sorted(p.stem for p in (VOC_REAL / "JPEGImages").glob("*.jpg"))
    assert len(ids) == 8
    cls_labels = load_cls_labels(VOC_REAL / "cls_labels.npy")
    sizes = set()
    for img_id in ids:
        rgb = read_image(find_image(dirs["images"], img_id))
        seg = read_label_png(find_label(dirs["labels"], img_id), shape=rgb.shape)
        assert rgb.dtype == np.uint8 and rgb.shape[2] == 3 and seg.shape == rgb.shape[:2]
        values = set(np.unique(seg).tolist())
        assert values <= set(range(21)) | {255}
        present = sorted(v - 1 for v in values if 0 < v < 255)
        label = get_image_label(cls_labels, img_id, VOC_REAL / "cls_labels.npy")
        assert np.flatnonzero(label).tolist() == present, img_id
        sizes.add(rgb.shape[:2])
    assert len(sizes) > 1


@needs_voc_real
def test_image_dataset_on_real_images(tmp_path):
    labels = load_cls_labels(VOC_REAL / "cls_labels.npy")
    ids = sorted(labels)[:3]
    data = VOCImageDataset(ids, VOC_REAL / "JPEGImages", labels,
                           transform=lambda rgb: rgb[:10, :12])
    img_id, rgb, label = data[1]
    assert len(data) == 3 and img_id == ids[1] and rgb.shape == (10, 12, 3)
    np.testing.assert_array_equal(label, labels[ids[1]])
    assert VOCImageDataset(ids, VOC_REAL / "JPEGImages")[0][2] is None
    with pytest.raises(InputError) as exc:
        VOCImageDataset(ids + ["2099_000001"], VOC_REAL / "JPEGImages", labels,
                        labels_path="my_labels.npy")
    assert_one_line_naming(exc, "my_labels.npy")


def make_seg_folder(root, img_id, size=(6, 8), label_value=3, sal_size=None):
    """A one-image dataset: images/, labels/, sal/ under root."""
    h, w = size
    rng = np.random.default_rng(0)
    img_dir, label_dir, sal_dir = (root / n for n in ("images", "labels", "sal"))
    img_dir.mkdir()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(img_dir / f"{img_id}.png")
    seg = np.zeros((h, w), np.uint8)
    seg[1:3, 2:5] = label_value
    save_label_png(label_dir / f"{img_id}.png", seg)
    sh, sw = sal_size or size
    save_gray_png(sal_dir / f"{img_id}.png", np.full((sh, sw), 255, np.uint8))
    return img_dir, label_dir, sal_dir


def test_seg_dataset_reads_label_and_saliency(tmp_path):
    dirs = make_seg_folder(tmp_path, "s1")
    labels = {"s1": np.eye(20, dtype=np.float32)[2]}
    sample = VOCSegDataset(["s1"], *dirs, labels=labels)[0]
    assert sample["id"] == "s1" and sample["rgb"].shape == (6, 8, 3)
    assert sample["seg"][1, 2] == 3 and sample["seg"].sum() == 3 * 6
    assert sample["sal"].shape == (6, 8) and np.allclose(sample["sal"], 1.0)
    np.testing.assert_array_equal(sample["label"], labels["s1"])
    out = VOCSegDataset(["s1"], dirs[0], dirs[1], transform=lambda s: (s["sal"], s["label"]))[0]
    assert out == (None, None)


def test_label_value_out_of_range_names_the_png(tmp_path):
    img_dir, label_dir, _ = make_seg_folder(tmp_path, "bad", label_value=37)
    with pytest.raises(InputError) as exc:
        read_seg_sample("bad", img_dir, label_dir)
    assert_one_line_naming(exc, label_dir / "bad.png")
    assert "37" in str(exc.value)


def test_saliency_of_wrong_size_names_the_file(tmp_path):
    dirs = make_seg_folder(tmp_path, "sal", sal_size=(5, 8))
    with pytest.raises(InputError) as exc:
        read_seg_sample("sal", *dirs)
    assert_one_line_naming(exc, dirs[2] / "sal.png")


def test_missing_image_in_dataset_names_the_file(tmp_path):
    dirs = make_seg_folder(tmp_path, "here")
    shutil.copy(dirs[1] / "here.png", dirs[1] / "gone.png")
    with pytest.raises(InputError) as exc:
        VOCSegDataset(["here", "gone"], *dirs)[1]
    assert_one_line_naming(exc, dirs[0] / "gone.jpg")
    shutil.copy(dirs[0] / "here.png", dirs[0] / "gone.png")
    with pytest.raises(InputError) as exc:
        VOCSegDataset(["gone"], *dirs)[0]
    assert_one_line_naming(exc, dirs[2] / "gone.png")
    assert "missing saliency map" in str(exc.value)
