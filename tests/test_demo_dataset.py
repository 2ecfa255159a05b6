"""The built-in demo dataset: VOC layout, consistent labels, saliency that looks like a
detector's, determinism."""
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from data import make_demo_dataset as gen
from data.make_cls_labels import voc_cls_labels
from data.make_demo_dataset import MAX_SIZE, MIN_SIZE, main, make_demo_dataset
from tool.core.io import read_label_png, read_saliency, voc_palette
from tool.data.voc import VOC_CLASSES, load_cls_labels, read_image_list, voc_dirs

REPO = Path(__file__).resolve().parents[1]
NUM_TRAIN, NUM_VAL = 12, 4
FOLDERS = {"JPEGImages": ".jpg", "SegmentationClass": ".png", "SegmentationClassAug": ".png",
           "Annotations": ".xml", "SAL": ".png"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo_seed0")
    splits = make_demo_dataset(root, seed=0, num_train=NUM_TRAIN, num_val=NUM_VAL)
    return root, splits["train"] + splits["val"]


def file_bytes(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def xml_objects(path):
    tree = ET.parse(path).getroot()
    size = tuple(int(tree.find(f"size/{t}").text) for t in ("height", "width"))
    objects = [(VOC_CLASSES.index(o.find("name").text), o.find("difficult").text,
                tuple(int(o.find(f"bndbox/{t}").text) for t in ("xmin", "ymin", "xmax", "ymax")))
               for o in tree.iter("object")]
    return size, objects


def test_layout_and_lists(demo):
    root, ids = demo
    assert read_image_list(root / "train.txt") == ids[:NUM_TRAIN]
    assert read_image_list(root / "val.txt") == ids[NUM_TRAIN:]
    assert (root / "train_aug.txt").read_text() == (root / "train.txt").read_text()
    assert len(set(ids)) == NUM_TRAIN + NUM_VAL
    assert all(re.fullmatch(r"\d{4}_\d{6}", i) for i in ids)
    for folder, ext in FOLDERS.items():
        assert sorted(p.name for p in (root / folder).iterdir()) == sorted(i + ext for i in ids)
    assert "synthetic" in (root / "README.txt").read_text().lower()


def test_file_formats_and_sizes(demo):
    root, ids = demo
    sizes = set()
    for i in ids:
        with Image.open(root / "JPEGImages" / f"{i}.jpg") as img:
            assert (img.format, img.mode) == ("JPEG", "RGB")
            width, height = img.size
        for folder in ("SegmentationClass", "SegmentationClassAug"):
            with Image.open(root / folder / f"{i}.png") as lab:
                assert lab.mode == "P" and lab.getpalette()[:60] == voc_palette()[:60]
        with Image.open(root / "SAL" / f"{i}.png") as sal:
            assert sal.mode == "L" and sal.size == (width, height)
        label = read_label_png(root / "SegmentationClass" / f"{i}.png", shape=(height, width))
        aug = read_label_png(root / "SegmentationClassAug" / f"{i}.png")
        np.testing.assert_array_equal(label, aug)
        assert xml_objects(root / "Annotations" / f"{i}.xml")[0] == (height, width)
        assert MIN_SIZE <= min(height, width) and max(height, width) <= MAX_SIZE
        sizes.add((height, width))
    assert len(sizes) > len(ids) // 2


def test_classes_agree_between_masks_labels_and_xml(demo):
    root, ids = demo
    labels = load_cls_labels(root / "cls_labels.npy")
    raw = np.load(root / "cls_labels.npy", allow_pickle=True).item()
    assert set(raw) == set(ids) and all(v.dtype == np.float32 and v.shape == (20,) for v in raw.values())
    num_classes = []
    for i in ids:
        label = read_label_png(root / "SegmentationClass" / f"{i}.png")
        (height, width), objects = xml_objects(root / "Annotations" / f"{i}.xml")
        in_mask = set((np.unique(label[(label != 0) & (label != 255)]) - 1).tolist())
        in_xml = {c for c, _, _ in objects}
        assert set(np.unique(labels[i])) <= {0.0, 1.0}
        assert in_mask == in_xml == set(np.nonzero(labels[i])[0].tolist())
        assert 1 <= len(objects) <= 3 and all(d == "0" for _, d, _ in objects)
        for c, _, (x0, y0, x1, y1) in objects:
            assert 1 <= x0 <= x1 <= width and 1 <= y0 <= y1 <= height
            assert (label[y0 - 1:y1, x0 - 1:x1] == c + 1).any()
        band = label == 255
        assert 0 < band.mean() < 0.15 and (label == 0).mean() > 0.3
        num_classes.append(len(in_xml))
    assert max(num_classes) >= 2 and min(num_classes) == 1


def test_boxes_cover_their_class_pixels(demo):
    root, ids = demo
    for i in ids:
        label = read_label_png(root / "SegmentationClass" / f"{i}.png")
        covered = np.zeros(label.shape, bool)
        for c, _, (x0, y0, x1, y1) in xml_objects(root / "Annotations" / f"{i}.xml")[1]:
            covered[y0 - 1:y1, x0 - 1:x1] |= (label[y0 - 1:y1, x0 - 1:x1] == c + 1)
        assert covered.sum() == ((label != 0) & (label != 255)).sum()


def test_saliency_follows_objects_but_is_imperfect(demo):
    root, ids = demo
    on_objects, on_background, with_false_blob, with_missed_part = [], [], 0, 0
    for i in ids:
        label = read_label_png(root / "SegmentationClass" / f"{i}.png")
        sal = read_saliency(root / "SAL" / f"{i}.png", shape=label.shape)
        objects = label != 0
        on_objects.append(sal[objects & (label != 255)])
        on_background.append(sal[label == 0])
        assert len(np.unique(sal)) > 20   # graded and noisy, not a binary mask
        far_from_objects = ndimage.distance_transform_edt(~objects) > 8
        deep_inside = ndimage.distance_transform_edt(objects) > 4
        with_false_blob += ((sal > 0.15) & far_from_objects).sum() >= 10
        with_missed_part += ((sal < 0.5) & deep_inside).sum() >= 20
    on_objects, on_background = np.concatenate(on_objects), np.concatenate(on_background)
    assert on_objects.mean() > 0.6 and on_background.mean() < 0.1
    assert with_false_blob >= len(ids) // 2
    assert len(ids) // 4 <= with_missed_part < len(ids)


def test_same_seed_same_bytes_other_seed_differs(demo, tmp_path):
    root, ids = demo
    make_demo_dataset(tmp_path / "again", seed=0, num_train=NUM_TRAIN, num_val=NUM_VAL)
    assert file_bytes(tmp_path / "again") == file_bytes(root)
    make_demo_dataset(tmp_path / "other", seed=1, num_train=NUM_TRAIN, num_val=NUM_VAL)
    for i in ids:
        jpg = Path("JPEGImages") / f"{i}.jpg"
        assert (tmp_path / "other" / jpg).read_bytes() != (root / jpg).read_bytes()


def test_image_depends_only_on_seed_and_position(demo, tmp_path):
    root, ids = demo
    splits = make_demo_dataset(tmp_path, seed=0, num_train=2, num_val=1)
    assert splits == {"train": ids[:2], "val": ids[2:3]}
    for i in ids[:3]:
        for folder, ext in FOLDERS.items():
            assert (tmp_path / folder / f"{i}{ext}").read_bytes() == (root / folder / f"{i}{ext}").read_bytes()


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="min_size"):
        make_demo_dataset(tmp_path, min_size=40)
    with pytest.raises(ValueError, match="at least one"):
        make_demo_dataset(tmp_path, num_val=0)
    with pytest.raises(SystemExit):
        main(["--root", str(tmp_path), "--num_train", "0"])
    assert not any(tmp_path.iterdir())


def test_command_line_as_documented(tmp_path):
    out = subprocess.run([sys.executable, "data/make_demo_dataset.py", "--root", str(tmp_path / "d"),
                          "--seed", "3", "--num_train", "2", "--num_val", "1"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "2 train + 1 val" in out.stdout
    assert len(read_image_list(tmp_path / "d" / "val.txt")) == 1


def test_data_tools_read_it_like_voc(demo):
    root, ids = demo
    dirs = voc_dirs(root)
    assert Path(dirs["labels"]).name == "SegmentationClassAug" and Path(dirs["saliency"]).name == "SAL"
    from_xml = voc_cls_labels(ids, dirs["annotations"])
    stored = load_cls_labels(root / "cls_labels.npy")
    assert all(np.array_equal(from_xml[i], stored[i]) for i in ids)


def test_workers_do_not_change_the_bytes(demo, tmp_path):
    root, ids = demo
    make_demo_dataset(tmp_path / "two", seed=0, num_train=NUM_TRAIN, num_val=NUM_VAL, workers=2)
    assert file_bytes(tmp_path / "two") == file_bytes(root)


def drawn_samples(count, seed=5):
    return [gen.render_sample(np.random.default_rng([seed, k])) for k in range(count)]


def test_objects_are_a_small_class_specific_head_on_a_larger_body():
    """The WSSS regime: the discriminative part (the head) is a minority of each object."""
    head_fractions = []
    for sample in drawn_samples(24):
        objects = (sample.label != 0) & (sample.label != 255)
        heads = sample.heads & objects
        assert heads.any() and heads.sum() < objects.sum()
        head_fractions.append(heads.sum() / objects.sum())
    assert 0.1 < np.mean(head_fractions) < 0.35
    rng = np.random.default_rng(0)
    for name, spec in gen.DEMO_CLASSES.items():
        parts = gen.object_parts(gen.class_index(name), rng)
        assert (parts[-1].shape, parts[-1].look) == (spec.head_shape, spec.head)
        assert parts[0].look in gen.BODY_LOOKS
    heads = {(c.head_shape, c.head) for c in gen.DEMO_CLASSES.values()}
    assert len(heads) == len(gen.DEMO_CLASSES)  # no two classes share a head


def test_body_look_and_scene_only_lean_towards_the_class():
    rng = np.random.default_rng(1)
    cow = gen.class_index("cow")
    spec = gen.DEMO_CLASSES["cow"]
    bodies = [gen.object_parts(cow, rng)[0].look for _ in range(2000)]
    preferred = np.mean([look == gen.BODY_LOOKS[spec.body] for look in bodies])
    chance = 1 / len(gen.BODY_LOOKS)
    expected = gen.BODY_PREFERENCE + (1 - gen.BODY_PREFERENCE) * chance
    assert preferred == pytest.approx(expected, abs=0.04)
    assert len(set(bodies)) == len(gen.BODY_LOOKS)  # any class may wear any look
    scenes = [gen.scene_kind([cow], rng) for _ in range(2000)]
    share = np.mean([s == spec.scene for s in scenes])
    expected = gen.CONTEXT_PREFERENCE + (1 - gen.CONTEXT_PREFERENCE) / len(gen.SCENES)
    assert share == pytest.approx(expected, abs=0.04)
    assert set(scenes) == set(gen.SCENES)


def test_headless_objects_keep_their_class_but_show_no_head(monkeypatch):
    """HEADLESS_PROB (0 in the demo): an object may be drawn without its head; it is still
    its class in the masks, and no pixel of it counts as head."""
    monkeypatch.setattr(gen, "HEADLESS_PROB", 1.0)
    rng = np.random.default_rng(0)
    for name in gen.DEMO_CLASSES:
        parts = gen.object_parts(gen.class_index(name), rng)
        assert not gen.has_head(parts) and parts[0].look in gen.BODY_LOOKS
    for sample in drawn_samples(6):
        assert not sample.heads.any()
        assert {c + 1 for c, _, _ in sample.objects} == set(np.unique(sample.label)) - {0, 255}
