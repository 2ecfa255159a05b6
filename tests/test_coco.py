"""COCO: the class-id mapping, image labels and rendered label maps from a tiny
instances JSON (polygons and an uncompressed-RLE crowd region)."""
import json

import numpy as np
import pytest

from tool.coco import (CATEGORY_TO_INDEX, COCO_CATEGORIES, COCO_CLASSES, NUM_COCO_CLASSES,
                       image_labels_from_instances, load_coco, render_label_png)
from tool.io import InputError

PERSON, DOG, TOOTHBRUSH = 1, 18, 90
H, W = 20, 24


def box_polygon(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def uncompressed_rle(mask):
    """COCO's uncompressed RLE: run lengths of the column-major mask, zeros first."""
    flat = mask.flatten(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], edges])).tolist()
    return {"counts": counts, "size": list(mask.shape)}


def crowd_mask():
    mask = np.zeros((H, W), np.uint8)
    mask[12:20, 0:10] = 1
    return mask


def instances(categories=((PERSON, "person"), (DOG, "dog"), (TOOTHBRUSH, "toothbrush"))):
    anns = [  # the small dog first: drawing order must not depend on listing order
        {"id": 1, "image_id": 1, "category_id": DOG, "iscrowd": 0,
         "segmentation": box_polygon(8, 4, 14, 10), "area": 36, "bbox": [8, 4, 6, 6]},
        {"id": 2, "image_id": 1, "category_id": PERSON, "iscrowd": 0,
         "segmentation": box_polygon(2, 2, 20, 16), "area": 252, "bbox": [2, 2, 18, 14]},
        {"id": 3, "image_id": 1, "category_id": PERSON, "iscrowd": 1,
         "segmentation": uncompressed_rle(crowd_mask()), "area": 80, "bbox": [0, 12, 10, 8]},
        {"id": 4, "image_id": 2, "category_id": TOOTHBRUSH, "iscrowd": 0,
         "segmentation": box_polygon(1, 1, 5, 5), "area": 16, "bbox": [1, 1, 4, 4]},
    ]
    images = [{"id": i, "file_name": f"COCO_val2014_{i:012d}.jpg", "height": H, "width": W}
              for i in (1, 2, 3)]
    cats = [{"id": i, "name": n} for i, n in categories]
    return {"images": images, "annotations": anns, "categories": cats}


@pytest.fixture
def json_path(tmp_path):
    path = tmp_path / "instances_val2014.json"
    path.write_text(json.dumps(instances()))
    return path


def test_category_mapping_is_contiguous():
    ids = [cat_id for cat_id, _ in COCO_CATEGORIES]
    assert NUM_COCO_CLASSES == 80 == len(set(COCO_CLASSES))
    assert ids == sorted(set(ids)) and ids[-1] == 90
    assert [CATEGORY_TO_INDEX[i] for i in ids] == list(range(80))
    assert 12 not in CATEGORY_TO_INDEX and COCO_CLASSES[CATEGORY_TO_INDEX[DOG]] == "dog"


def test_image_labels_from_instances(json_path):
    labels = image_labels_from_instances(json_path)
    assert sorted(labels) == [f"COCO_val2014_{i:012d}" for i in (1, 2, 3)]
    assert all(v.dtype == np.float32 and v.shape == (80,) for v in labels.values())
    assert np.flatnonzero(labels["COCO_val2014_000000000001"]).tolist() == [0, CATEGORY_TO_INDEX[DOG]]
    assert np.flatnonzero(labels["COCO_val2014_000000000002"]).tolist() == [79]
    assert not labels["COCO_val2014_000000000003"].any()


def test_rendered_label_map(json_path):
    coco = load_coco(str(json_path))
    label = render_label_png(coco, 1)
    masks = {a["id"]: coco.annToMask(a).astype(bool) for a in coco.dataset["annotations"]}
    dog, person, crowd = masks[1], masks[2], masks[3]
    np.testing.assert_array_equal(crowd, crowd_mask().astype(bool))
    assert label.shape == (H, W) and label.dtype == np.uint8
    assert dog.sum() > 0 and (label[dog] == CATEGORY_TO_INDEX[DOG] + 1).all()
    assert (label[person & ~dog] == 1).all()
    assert (crowd & person).any() and (crowd & ~person).any()
    assert (label[crowd & ~person] == 255).all()
    assert (label[~(dog | person | crowd)] == 0).all()
    assert set(np.unique(render_label_png(coco, 2)).tolist()) == {0, 80}
    assert not render_label_png(coco, 3).any()


def test_unknown_category_names_the_json(tmp_path):
    data = instances()
    data["annotations"][0]["category_id"] = 12
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    for call in (image_labels_from_instances, lambda p: render_label_png(load_coco(p), 1)):
        with pytest.raises(InputError) as exc:
            call(str(path))
        assert str(path) in str(exc.value) and "12" in str(exc.value)


def test_bad_json_files(tmp_path):
    not_json = tmp_path / "broken.json"
    not_json.write_text("{")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"images": []}))
    for path in (not_json, wrong, tmp_path / "absent.json"):
        with pytest.raises(InputError) as exc:
            image_labels_from_instances(path)
        assert str(path) in str(exc.value) and "\n" not in str(exc.value)
