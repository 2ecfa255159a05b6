"""data/demo_to_coco.py: the demo dataset in COCO 2014 layout, read back by pycocotools and
by data/make_coco.py, agrees with the demo's own ground truth pixel for pixel."""
import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from scipy import ndimage

from data import demo_to_coco, make_coco
from data.make_demo_dataset import make_demo_dataset
from stage_inputs import run_main_captured
from tool.core.io import InputError, read_label_png, save_label_png
from tool.data.coco import CATEGORY_TO_INDEX, COCO_CATEGORIES, NUM_COCO_CLASSES
from tool.data.coco_annotations import (VOC_TO_COCO_CATEGORY, coco_categories, compressed_rle,
                                        label_regions, mask_polygons, uncompressed_rle)
from tool.data.voc import VOC_CLASSES, load_cls_labels, read_image_list

NUM_TRAIN, NUM_VAL = 6, 3




@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo_to_coco")
    demo, coco, wsss = tmp / "demo", tmp / "coco", tmp / "wsss"
    splits = make_demo_dataset(demo, seed=0, num_train=NUM_TRAIN, num_val=NUM_VAL)
    result, printed = run_main_captured(demo_to_coco, ["--root", demo, "--out", coco])
    run_main_captured(make_coco, ["--coco_root", coco, "--out", wsss])
    return {"demo": demo, "coco": coco, "wsss": wsss, "splits": splits, "result": result,
            "printed": printed}


def coco_api(converted, split):
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(converted["coco"] / "annotations" / f"instances_{split}2014.json"))


def voc_to_coco_values():
    """Lookup table: demo label value (0, 1..20, 255) -> make_coco's (0, 1..80, 255)."""
    lut = np.arange(256, dtype=np.uint8)
    lut[1:len(VOC_CLASSES) + 1] = [CATEGORY_TO_INDEX[c] + 1 for c in VOC_TO_COCO_CATEGORY]
    return lut


def test_voc_classes_map_to_coco_categories_by_name():
    names = dict(COCO_CATEGORIES)
    assert names[VOC_TO_COCO_CATEGORY[VOC_CLASSES.index("aeroplane")]] == "airplane"
    assert names[VOC_TO_COCO_CATEGORY[VOC_CLASSES.index("tvmonitor")]] == "tv"
    assert names[VOC_TO_COCO_CATEGORY[VOC_CLASSES.index("sofa")]] == "couch"
    assert names[VOC_TO_COCO_CATEGORY[VOC_CLASSES.index("person")]] == "person"
    assert len(set(VOC_TO_COCO_CATEGORY)) == len(VOC_CLASSES)


def test_layout_names_and_copies(converted):
    coco, demo = converted["coco"], converted["demo"]
    for split in ("train", "val"):
        for demo_id in converted["splits"][split]:
            stem = converted["result"]["names"][demo_id]
            assert stem == f"COCO_{split}2014_{int(demo_id.replace('_', '')):012d}"
            assert (coco / f"{split}2014" / f"{stem}.jpg").read_bytes() == \
                (demo / "JPEGImages" / f"{demo_id}.jpg").read_bytes()
            assert (coco / "SAL" / f"{stem}.png").read_bytes() == \
                (demo / "SAL" / f"{demo_id}.png").read_bytes()
    assert "18 files copied" in converted["printed"]


def test_categories_are_cocos_80_with_real_ids(converted):
    for split in ("train", "val"):
        data = json.loads((converted["coco"] / "annotations" /
                           f"instances_{split}2014.json").read_text())
        ids = [c["id"] for c in data["categories"]]
        assert len(ids) == NUM_COCO_CLASSES and max(ids) == 90 and 12 not in ids
        assert {c["name"]: c["supercategory"] for c in data["categories"]}["toilet"] == "furniture"
    assert coco_categories()[0] == {"id": 1, "name": "person", "supercategory": "person"}


def test_annotations_decode_to_the_demo_instances(converted):
    """Every annotation, decoded by pycocotools, is one connected component of its class in
    the demo label PNG (or the 255 band for crowds); bbox and area as COCO's; all three
    segmentation kinds occur; annotation ids are unique over both splits."""
    lut = voc_to_coco_values()
    kinds, ann_ids = set(), []
    for split in ("train", "val"):
        api = coco_api(converted, split)
        for demo_id in converted["splits"][split]:
            image_id = int(demo_id.replace("_", ""))
            label_path = converted["demo"] / "SegmentationClassAug" / f"{demo_id}.png"
            label = lut[read_label_png(label_path)]
            covered = np.zeros(label.shape, int)
            for ann in api.loadAnns(api.getAnnIds(imgIds=[image_id])):
                ann_ids.append(ann["id"])
                mask = api.annToMask(ann).astype(bool)
                covered += mask
                seg = ann["segmentation"]
                kinds.add("polygon" if isinstance(seg, list) else
                          "rle" if isinstance(seg["counts"], list) else "compressed")
                ys, xs = np.nonzero(mask)
                assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                       ys.max() - ys.min() + 1]
                assert ann["area"] == mask.sum()
                if ann["iscrowd"]:
                    assert isinstance(seg["counts"], list)  # COCO writes crowds uncompressed
                    assert (label[mask] == 255).all()
                    continue
                value = CATEGORY_TO_INDEX[ann["category_id"]] + 1
                assert (label[mask] == value).all()
                grown = ndimage.binary_dilation(mask, np.ones((3, 3), bool))
                assert not (grown & ~mask & (label == value)).any()  # a whole component
            assert (covered == (label != 0)).all()  # each labelled pixel in one annotation
    assert kinds == {"polygon", "rle", "compressed"}
    assert len(ann_ids) == len(set(ann_ids))


def test_make_coco_ground_truth_matches_the_demo(converted):
    """make_coco.py's label PNGs are the demo's with the VOC values renumbered (no pixel
    lost to polygon rasterisation), its image labels the demo's cls_labels renumbered."""
    demo, wsss, names = converted["demo"], converted["wsss"], converted["result"]["names"]
    lut = voc_to_coco_values()
    voc_labels, coco_labels = (load_cls_labels(demo / "cls_labels.npy"),
                               load_cls_labels(wsss / "cls_labels.npy"))
    for split in ("train", "val"):
        ids = converted["splits"][split]
        assert read_image_list(wsss / f"{split}.txt") == sorted(names[i] for i in ids)
        for demo_id in ids:
            expected = lut[read_label_png(demo / "SegmentationClassAug" / f"{demo_id}.png")]
            got = read_label_png(wsss / "SegmentationClass" / f"{names[demo_id]}.png")
            np.testing.assert_array_equal(got, expected)
            mapped = np.zeros(NUM_COCO_CLASSES, np.float32)
            mapped[[CATEGORY_TO_INDEX[VOC_TO_COCO_CATEGORY[c]]
                    for c in np.flatnonzero(voc_labels[demo_id])]] = 1
            np.testing.assert_array_equal(coco_labels[names[demo_id]], mapped)
    assert converted["result"]["label_mismatches"] == []


def test_polygons_are_pixel_exact_and_holes_refused():
    """Random masks (corner-touching pixels included): the polygons rasterise by
    pycocotools to the mask itself; a mask with a hole gets no polygon."""
    rng = np.random.default_rng(0)
    holes = polygons = 0
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        mask = rng.random((h, w)) < rng.uniform(0.2, 0.8)
        if not mask.any():
            continue
        has_hole = (ndimage.binary_fill_holes(mask, np.ones((3, 3), bool)) != mask).any()
        polys = mask_polygons(mask)
        assert (polys is None) == has_hole
        if polys is None:
            holes += 1
            continue
        polygons += 1
        decoded = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w)))
        np.testing.assert_array_equal(decoded.astype(bool), mask)
    assert holes > 10 and polygons > 100


@pytest.mark.parametrize("first", [0, 1])
def test_rle_encoders_round_trip(first):
    mask = np.zeros((5, 7), bool)
    mask[0, 0] = first
    mask[1:4, 2:6] = True
    raw = uncompressed_rle(mask)
    assert raw["counts"][0] == (0 if first else 11)  # zeros first: columns 0, 1 and (0, 2)
    assert sum(raw["counts"]) == mask.size
    np.testing.assert_array_equal(mask_utils.decode(mask_utils.frPyObjects(raw, 5, 7)), mask)
    packed = compressed_rle(mask)
    packed = {"counts": packed["counts"].encode(), "size": packed["size"]}
    np.testing.assert_array_equal(mask_utils.decode(packed), mask)


def test_components_and_band_regions():
    """Two separate pieces of one class are two instances; the 255 band goes to the
    nearest object's class, as a crowd region."""
    label = np.zeros((8, 12), np.uint8)
    label[1:4, 1:4] = 3
    label[5:7, 1:3] = 3
    label[1:7, 7:11] = 8
    label[1:7, 6] = 255
    label[4, 1:4] = 255
    regions = label_regions(label, "test")
    instances = [(c, m.sum()) for c, m, crowd in regions if not crowd]
    assert sorted(instances) == [(2, 4), (2, 9), (7, 24)]
    crowds = {c: m for c, m, crowd in regions if crowd}
    assert crowds[2][4, 1:4].all() and crowds[7][1:7, 6].all()
    assert sum(m.sum() for m in crowds.values()) == (label == 255).sum()


def test_bad_label_value_names_the_file(tmp_path):
    demo = tmp_path / "demo"
    make_demo_dataset(demo, seed=1, num_train=1, num_val=1)
    label_path = demo / "SegmentationClassAug" / "2026_000001.png"
    label = read_label_png(label_path).copy()
    label[0, 0] = 30
    save_label_png(label_path, label)
    with pytest.raises(InputError, match=f"{label_path}: label value 30 out of range"):
        demo_to_coco.demo_to_coco(demo, tmp_path / "coco")


def test_non_numeric_id_is_refused(tmp_path):
    with pytest.raises(InputError, match="train.txt: image id 'img_a' is not digits"):
        demo_to_coco.coco_image_id("img_a", "train.txt")


def test_rerun_keeps_copies(converted):
    _, printed = run_main_captured(demo_to_coco,
                                   ["--root", converted["demo"], "--out", converted["coco"]])
    assert "0 files copied" in printed
