"""COCO: the category-id mapping (gaps), image labels, the ground-truth label rule
(overlaps, crowd) against pycocotools' own decoding, and data/make_coco.py."""
import contextlib
import io
import json
import os

import numpy as np
import pytest
from pycocotools.coco import COCO

from coco_data import (DOG, GIRAFFE, PERSON, STOP_SIGN, TOOTHBRUSH, box_mask, box_polygon,
                       compressed_rle, make_coco_layout, uncompressed_rle)
from data import make_coco
from tool.core.io import InputError, read_label_png
from tool.data.coco import (CATEGORY_TO_INDEX, COCO_CATEGORIES, COCO_CLASSES, NUM_COCO_CLASSES,
                            annotation_mask, class_index, image_labels_from_instances, label_map)
from tool.data.voc import id_from_list_entry, load_cls_labels, read_image_list

H, W = 20, 24
COCO_ID_GAPS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)  # ids 1..90 that name no category


def ann(ann_id, category, segmentation, crowd=0, image_id=1):
    return {"id": ann_id, "image_id": image_id, "category_id": category, "iscrowd": crowd,
            "segmentation": segmentation, "area": 1, "bbox": [0, 0, 1, 1]}


def crowd_mask():
    return box_mask(0, 12, 10, 20, H, W)


def instances():
    anns = [  # the small dog first: drawing order must not matter
        ann(1, DOG, box_polygon(8, 4, 14, 10)),
        ann(2, PERSON, box_polygon(2, 2, 20, 16)),
        ann(3, PERSON, uncompressed_rle(crowd_mask()), crowd=1),
        ann(4, TOOTHBRUSH, box_polygon(1, 1, 5, 5), image_id=2),
    ]
    images = [{"id": i, "file_name": f"COCO_val2014_{i:012d}.jpg", "height": H, "width": W}
              for i in (1, 2, 3)]
    cats = [{"id": i, "name": n} for i, n in ((PERSON, "person"), (DOG, "dog"),
                                               (TOOTHBRUSH, "toothbrush"))]
    return {"images": images, "annotations": anns, "categories": cats}


@pytest.fixture
def json_path(tmp_path):
    path = tmp_path / "instances_val2014.json"
    path.write_text(json.dumps(instances()))
    return path


def test_category_mapping_is_contiguous_over_the_gaps():
    ids = [cat_id for cat_id, _ in COCO_CATEGORIES]
    assert NUM_COCO_CLASSES == 80 == len(set(COCO_CLASSES))
    assert ids == sorted(set(ids)) and ids[0] == 1 and ids[-1] == 90
    assert sorted(set(range(1, 91)) - set(ids)) == list(COCO_ID_GAPS)
    assert [CATEGORY_TO_INDEX[i] for i in ids] == list(range(80))
    named = {COCO_CLASSES[class_index(i, "x")]: i for i in (PERSON, STOP_SIGN, DOG, GIRAFFE,
                                                             TOOTHBRUSH)}
    assert named == {"person": 1, "stop sign": 13, "dog": 18, "giraffe": 25, "toothbrush": 90}
    assert [class_index(i, "x") for i in (11, 13, 25, 27, 90)] == [10, 11, 23, 24, 79]
    for bad in (0, 12, 83, 91):
        with pytest.raises(InputError, match=f"j.json: unknown COCO category id {bad}$"):
            class_index(bad, "j.json")


def test_image_labels_from_instances(json_path):
    labels = image_labels_from_instances(json_path)
    assert sorted(labels) == [f"COCO_val2014_{i:012d}" for i in (1, 2, 3)]
    assert all(v.dtype == np.float32 and v.shape == (80,) for v in labels.values())
    assert np.flatnonzero(labels["COCO_val2014_000000000001"]).tolist() == \
        [0, CATEGORY_TO_INDEX[DOG]]
    assert np.flatnonzero(labels["COCO_val2014_000000000002"]).tolist() == [79]
    assert not labels["COCO_val2014_000000000003"].any()


def test_masks_decode_as_pycocotools_does(json_path):
    """Polygons, uncompressed and compressed RLE give COCO.annToMask's masks."""
    data = instances()
    mask = np.zeros((H, W), np.uint8)
    mask[3:9, 5:21] = 1
    mask[12:18, 2:6] = 1
    data["annotations"].append(ann(5, DOG, compressed_rle(mask), image_id=3))
    data["annotations"].append(ann(6, DOG, box_polygon(0, 0, 3, 3) + box_polygon(9, 9, 12, 16),
                                   image_id=3))
    json_path.write_text(json.dumps(data))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(json_path))
    for a in coco.dataset["annotations"]:
        ours = annotation_mask(a["segmentation"], H, W, "x")
        np.testing.assert_array_equal(ours, coco.annToMask(a).astype(bool))
    np.testing.assert_array_equal(annotation_mask(compressed_rle(mask), H, W, "x"), mask > 0)
    with pytest.raises(InputError, match="RLE of size"):
        annotation_mask(compressed_rle(mask), H + 1, W, "x")


def test_label_map_rule():
    """Class where one class covers a pixel with an individual instance; 255 where two
    classes overlap or only a crowd region lies; 0 elsewhere; order-independent."""
    anns = instances()["annotations"][:3]
    label = label_map(anns, H, W, "x")
    assert np.array_equal(label, label_map(anns[::-1], H, W, "x"))
    dog = annotation_mask(anns[0]["segmentation"], H, W, "x")
    person = annotation_mask(anns[1]["segmentation"], H, W, "x")
    crowd = crowd_mask().astype(bool)
    assert label.shape == (H, W) and label.dtype == np.uint8
    assert dog.sum() > 0 and (dog <= person).all()
    assert (label[dog] == 255).all()  # dog inside person: two classes
    assert (label[person & ~dog] == 1).all()  # person; also where the person crowd lies on it
    assert (crowd & person).any() and (crowd & ~person).any()
    assert (label[crowd & ~person] == 255).all()  # crowd only
    assert (label[~(dog | person | crowd)] == 0).all()
    # same class twice is no conflict; a crowd region of another class is
    two_persons = [anns[1], ann(7, PERSON, box_polygon(10, 10, 24, 20))]
    assert set(np.unique(label_map(two_persons, H, W, "x"))) == {0, 1}
    dog_on_crowd = label_map([anns[2], ann(8, DOG, box_polygon(0, 14, 4, 20))], H, W, "x")
    assert (dog_on_crowd[14:20, 0:4] == 255).all()
    assert not label_map([], H, W, "x").any()
    assert not label_map([ann(10, DOG, [])], H, W, "x").any()  # no polygon at all
    toothbrush = label_map([ann(9, TOOTHBRUSH, box_polygon(1, 1, 5, 5))], H, W, "x")
    assert set(np.unique(toothbrush)) == {0, 80}


def test_unknown_category_names_the_json(tmp_path):
    data = instances()
    data["annotations"][0]["category_id"] = 12
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as exc:
        image_labels_from_instances(str(path))
    assert str(path) in str(exc.value) and "12" in str(exc.value)
    with pytest.raises(InputError, match="unknown COCO category id 12"):
        label_map(data["annotations"][:1], H, W, str(path))


def test_bad_json_files(tmp_path):
    not_json = tmp_path / "broken.json"
    not_json.write_text("{")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"images": []}))
    for path in (not_json, wrong, tmp_path / "absent.json"):
        with pytest.raises(InputError) as exc:
            image_labels_from_instances(path)
        assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_coco_names_in_every_list_format(tmp_path):
    name = "COCO_train2014_000000000009"
    for entry in (name, f"{name}.jpg", f"/JPEGImages/{name}.jpg", f"train2014/{name}.jpg"):
        assert id_from_list_entry(entry) == name
    listing = tmp_path / "list.txt"
    listing.write_text(f"{name}\n/JPEGImages/{name}.jpg /SegmentationClass/{name}.png\n"
                       f"{name}.jpg\n")
    assert read_image_list(listing) == [name] * 3


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco_raw")
    return make_coco_layout(root, root / "SAL")


def test_make_coco_writes_the_layout_and_resumes(coco_root, tmp_path, capsys):
    out = tmp_path / "coco"
    argv = ["--coco_root", str(coco_root), "--out", str(out)]
    counts = make_coco.main(argv)
    assert counts == {"train": {"listed": 6, "left_out": 1, "written": 6},
                      "val": {"listed": 2, "left_out": 1, "written": 2}}
    assert "train: 6 images listed (1 without annotations left out)" in capsys.readouterr().out
    train = read_image_list(out / "train.txt")
    assert train == sorted(train) and "COCO_train2014_000000000004" not in train
    labels = load_cls_labels(out / "cls_labels.npy")
    assert len(labels) == 10 and not labels["COCO_train2014_000000000004"].any()
    first = "COCO_train2014_000000000001"
    assert np.flatnonzero(labels[first]).tolist() == [0, 79]
    assert os.path.realpath(out / "JPEGImages" / f"{first}.jpg") == \
        os.path.realpath(coco_root / "train2014" / f"{first}.jpg")
    label = read_label_png(out / "SegmentationClass" / f"{first}.png", 81, shape=(72, 96))
    assert set(np.unique(label)) == {0, 1, 80}
    overlap = read_label_png(out / "SegmentationClass" / "COCO_train2014_000000000002.png")
    assert (overlap[30:60, 40:60] == 255).all()  # dog and giraffe overlap
    crowd = read_label_png(out / "SegmentationClass" / "COCO_train2014_000000000005.png")
    assert (crowd[45:72, 0:40] == 255).all() and (crowd[10:60, 50:90] == 1).all()

    stamp = (out / "SegmentationClass" / f"{first}.png").stat().st_mtime_ns
    again = make_coco.main(argv + ["--keep_unlabelled", "--workers", "2"])
    assert again["train"] == {"listed": 7, "left_out": 0, "written": 1}  # only the new one
    assert (out / "SegmentationClass" / f"{first}.png").stat().st_mtime_ns == stamp
    empty = read_label_png(out / "SegmentationClass" / "COCO_train2014_000000000004.png")
    assert not empty.any()
    assert make_coco.main(argv + ["--overwrite"])["val"]["written"] == 2
    assert (out / "SegmentationClass" / f"{first}.png").stat().st_mtime_ns != stamp


def test_make_coco_bad_input(coco_root, tmp_path):
    raw = tmp_path / "raw"
    make_coco_layout(raw, tmp_path / "sal")
    (raw / "val2014" / "COCO_val2014_000000000500.jpg").unlink()
    with pytest.raises(InputError, match=r"COCO_val2014_000000000500\.jpg: image of .* not found"):
        make_coco.main(["--coco_root", str(raw), "--out", str(tmp_path / "o1"), "--splits", "val"])
    data = json.loads((raw / "annotations" / "instances_train2014.json").read_text())
    data["images"][0]["height"] = 50
    (raw / "annotations" / "instances_train2014.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"000000000001\.jpg: image is 72x96 but .* says 50x96"):
        make_coco.main(["--coco_root", str(raw), "--out", str(tmp_path / "o2"),
                        "--splits", "train"])
    with pytest.raises(InputError, match="instances_test2014.json: COCO instances JSON not found"):
        (raw / "test2014").mkdir()
        make_coco.main(["--coco_root", str(raw), "--out", str(tmp_path / "o3"),
                        "--splits", "test"])
