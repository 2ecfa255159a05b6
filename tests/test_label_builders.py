"""data/make_cls_labels.py and data/make_train_aug.py on small fake VOC / SBD / COCO folders."""
import json

import numpy as np
import pytest
import scipy.io

from data import make_cls_labels, make_train_aug
from tool.core.cli import run_main
from tool.core.io import InputError, read_label_png, save_label_png
from tool.data.voc import VOC_CLASSES, load_cls_labels, read_image_list

PERSON_WITH_PARTS = """<object><name>person</name><difficult>0</difficult>
  <part><name>head</name></part><part><name>hand</name></part></object>"""


def xml_text(*objects):
    body = "".join(o if o.startswith("<object>") else
                   f"<object><name>{o}</name><difficult>1</difficult></object>" for o in objects)
    return f"<annotation><filename>x.jpg</filename>{body}</annotation>"


def make_annotations(root, annotations):
    folder = root / "Annotations"
    folder.mkdir(parents=True)
    for img_id, objects in annotations.items():
        (folder / f"{img_id}.xml").write_text(xml_text(*objects))
    return folder


def class_ids(label):
    return [VOC_CLASSES[i] for i in np.flatnonzero(label)]


def test_image_label_from_xml_keeps_difficult_and_skips_parts(tmp_path):
    folder = make_annotations(tmp_path, {"a": ("dog", PERSON_WITH_PARTS, "dog", " tvmonitor ")})
    label = make_cls_labels.image_label_from_xml(folder / "a.xml")
    assert label.dtype == np.float32 and label.shape == (20,)
    assert class_ids(label) == ["dog", "person", "tvmonitor"]


def test_unknown_class_and_broken_xml_name_the_file(tmp_path):
    folder = make_annotations(tmp_path, {"a": ("dog", "unicorn")})
    (folder / "b.xml").write_text("<annotation><object>")
    for name in ("a.xml", "b.xml", "missing.xml"):
        with pytest.raises(InputError) as exc:
            make_cls_labels.image_label_from_xml(folder / name)
        assert str(folder / name) in str(exc.value) and "\n" not in str(exc.value)


def test_make_cls_labels_voc_cli(tmp_path):
    make_annotations(tmp_path / "VOC2012", {"2007_000001": ("cat",), "2007_000002": ("bus", "car"),
                                            "2011_000003": (PERSON_WITH_PARTS,)})
    (tmp_path / "VOC2012" / "JPEGImages").mkdir()
    train = tmp_path / "train_aug.txt"
    train.write_text("/JPEGImages/2007_000001.jpg /SegmentationClassAug/2007_000001.png\n"
                     "/JPEGImages/2007_000002.jpg /SegmentationClassAug/2007_000002.png\n")
    val = tmp_path / "val.txt"
    val.write_text("2011_000003\n2007_000001\n")
    out = tmp_path / "cls_labels.npy"
    make_cls_labels.main(["--voc12_root", str(tmp_path / "VOC2012"), "--train_list", str(train),
                          "--val_list", str(val), "--out", str(out)])
    labels = load_cls_labels(out)
    assert {k: class_ids(v) for k, v in labels.items()} == {
        "2007_000001": ["cat"], "2007_000002": ["bus", "car"], "2011_000003": ["person"]}


def test_make_cls_labels_missing_xml_exits_with_one_line(tmp_path, capsys):
    make_annotations(tmp_path / "VOC2012", {"2007_000001": ("cat",)})
    (tmp_path / "VOC2012" / "JPEGImages").mkdir()
    ids = tmp_path / "ids.txt"
    ids.write_text("2007_000001\n2007_000009\n")
    with pytest.raises(SystemExit) as exit_info:
        run_main(make_cls_labels.main, ["--voc12_root", str(tmp_path / "VOC2012"), "--train_list",
                                        str(ids), "--val_list", str(ids),
                                        "--out", str(tmp_path / "o.npy")])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert exit_info.value.code == 2 and len(errors) == 1 and "2007_000009.xml" in errors[0]
    assert not (tmp_path / "o.npy").exists()


def test_make_cls_labels_coco_cli(tmp_path):
    paths = []
    for split, (img_id, cat) in {"train": (9, 1), "val": (42, 90)}.items():
        data = {"images": [{"id": img_id, "file_name": f"COCO_{split}2014_{img_id:012d}.jpg",
                            "height": 4, "width": 4}],
                "annotations": [{"id": 1, "image_id": img_id, "category_id": cat, "iscrowd": 0,
                                 "segmentation": [[0, 0, 3, 0, 3, 3]], "area": 4,
                                 "bbox": [0, 0, 3, 3]}]}
        paths.append(tmp_path / f"instances_{split}2014.json")
        paths[-1].write_text(json.dumps(data))
    out = tmp_path / "coco_labels.npy"
    make_cls_labels.main(["--coco_instances", *map(str, paths), "--out", str(out)])
    labels = load_cls_labels(out, num_classes=80)
    assert {k: np.flatnonzero(v).tolist() for k, v in labels.items()} == {
        "COCO_train2014_000000000009": [0], "COCO_val2014_000000000042": [79]}


SBD_TRAIN, SBD_VAL = ["2008_000001", "2008_000003", "2007_000005"], ["2008_000002"]
VOC_TRAIN, VOC_VAL = ["2007_000005", "2011_000001"], ["2008_000003", "2011_000002"]


def write_ids(path, ids):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(i + "\n" for i in ids))


def sbd_segmentation(value):
    seg = np.zeros((5, 6), np.uint8)
    seg[1:4, 2:5] = value
    return seg


def make_fake_devkit(root):
    """VOC2012 with ImageSets + SegmentationClass, SBD benchmark_RELEASE with cls/*.mat."""
    voc, sbd = root / "VOC2012", root / "benchmark_RELEASE" / "dataset"
    write_ids(voc / "ImageSets" / "Segmentation" / "train.txt", VOC_TRAIN)
    write_ids(voc / "ImageSets" / "Segmentation" / "val.txt", VOC_VAL)
    write_ids(sbd / "train.txt", SBD_TRAIN)
    write_ids(sbd / "val.txt", SBD_VAL)
    (sbd / "cls").mkdir()
    for index, img_id in enumerate(SBD_TRAIN + SBD_VAL):
        scipy.io.savemat(sbd / "cls" / f"{img_id}.mat", {"GTcls": {
            "Segmentation": sbd_segmentation(index + 1), "CategoriesPresent": index + 1}})
    for img_id in VOC_TRAIN + VOC_VAL:
        seg = sbd_segmentation(20)
        seg[0] = 255
        save_label_png(voc / "SegmentationClass" / f"{img_id}.png", seg)
    return voc, root / "benchmark_RELEASE"


def test_train_aug_ids_rule():
    expected = ["2007_000005", "2008_000001", "2008_000002", "2011_000001"]
    assert make_train_aug.train_aug_ids(SBD_TRAIN + SBD_VAL, VOC_TRAIN, VOC_VAL) == expected


def test_make_train_aug_cli_lists_and_labels(tmp_path):
    voc, sbd = make_fake_devkit(tmp_path)
    bare, pairs, labels = tmp_path / "train_aug.txt", tmp_path / "psa.txt", tmp_path / "Aug"
    make_train_aug.main(["--voc12_root", str(voc), "--sbd_root", str(sbd), "--out", str(bare),
                         "--label_dir", str(labels)])
    make_train_aug.main(["--voc12_root", str(voc), "--sbd_root", str(sbd / "dataset"),
                         "--out", str(pairs), "--psa_format"])
    expected = make_train_aug.train_aug_ids(SBD_TRAIN + SBD_VAL, VOC_TRAIN, VOC_VAL)
    assert bare.read_text().split("\n")[:-1] == expected
    assert pairs.read_text().splitlines()[0] == \
        "/JPEGImages/2007_000005.jpg /SegmentationClassAug/2007_000005.png"
    assert read_image_list(pairs) == expected

    written = sorted(p.stem for p in labels.glob("*.png"))
    assert written == sorted(set(SBD_TRAIN + SBD_VAL + VOC_TRAIN + VOC_VAL))
    from_sbd = read_label_png(labels / "2008_000002.png")
    np.testing.assert_array_equal(from_sbd, sbd_segmentation(4))
    from_voc = read_label_png(labels / "2007_000005.png")  # in both: VOC's own label wins
    assert from_voc[0, 0] == 255 and from_voc[2, 3] == 20


def test_bad_sbd_mat_names_the_file(tmp_path):
    bad_value = tmp_path / "v.mat"
    scipy.io.savemat(bad_value, {"GTcls": {"Segmentation": np.full((3, 3), 37, np.uint8)}})
    no_struct = tmp_path / "n.mat"
    scipy.io.savemat(no_struct, {"other": np.zeros(3)})
    for path in (bad_value, no_struct, tmp_path / "absent.mat"):
        with pytest.raises(InputError) as exc:
            make_train_aug.read_sbd_mat(path)
        assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_missing_sbd_lists_are_reported(tmp_path):
    with pytest.raises(InputError) as exc:
        make_train_aug.sbd_dataset_dir(tmp_path)
    assert str(tmp_path) in str(exc.value)
