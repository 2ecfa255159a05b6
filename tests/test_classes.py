"""The class vocabulary: the count from the data, --dataset and --num_classes (with each
script's meaning) agreeing or failing with one line; names; skipping unlabelled images."""
import argparse

import numpy as np
import pytest

from tool.core.io import InputError, save_npy
from tool.data.classes import (add_class_args, add_dataset_arg, class_flags, class_names,
                               labelled_images, resolve_num_classes, segmentation_class_names)
from tool.data.coco import COCO_CLASSES
from tool.data.voc import VOC_CLASSES


def parse(argv, with_background=None):
    p = argparse.ArgumentParser()
    if with_background is None:
        add_dataset_arg(p)
    else:
        add_class_args(p, with_background)
    return p.parse_args(argv)


@pytest.mark.parametrize("with_background,flag,expected", [
    (False, "20", 20), (False, "80", 80), (True, "21", 20), (True, "81", 80)])
def test_num_classes_keeps_each_scripts_meaning(with_background, flag, expected):
    args = parse(["--num_classes", flag], with_background)
    assert resolve_num_classes(args) == expected
    assert resolve_num_classes(args, found=expected, source="labels.npy") == expected


def test_count_from_data_else_dataset_else_voc():
    assert resolve_num_classes(parse([], True)) == 20
    assert resolve_num_classes(parse([], True), default=None) is None
    assert resolve_num_classes(parse(["--dataset", "coco"], True)) == 80
    assert resolve_num_classes(parse([], False), found=80, source="x") == 80
    assert resolve_num_classes(parse(["--dataset", "coco"]), found=80, source="x") == 80
    assert resolve_num_classes(parse(["--dataset", "coco", "--num_classes", "81"], True)) == 80


@pytest.mark.parametrize("argv,with_background,found,message", [
    (["--num_classes", "21"], True, 80,
     "coco/cls_labels.npy: holds 80 foreground classes, but --num_classes 21 (with "
     "background) gives 20"),
    (["--num_classes", "81"], False, 80,
     "coco/cls_labels.npy: holds 80 foreground classes, but --num_classes 81 gives 81"),
    (["--dataset", "voc"], None, 80,
     "coco/cls_labels.npy: holds 80 foreground classes, but --dataset voc gives 20"),
    (["--dataset", "coco", "--num_classes", "21"], True, None,
     "--num_classes 21 (with background) gives 20 foreground classes, but --dataset coco "
     "gives 80"),
    (["--num_classes", "1"], True, None, "--num_classes 1 (with background): leaves no "
                                         "foreground class"),
])
def test_mismatches_are_one_line(argv, with_background, found, message):
    with pytest.raises(InputError) as exc:
        resolve_num_classes(parse(argv, with_background), found, "coco/cls_labels.npy")
    assert str(exc.value) == message


def test_class_flags_help_says_which_count():
    p = argparse.ArgumentParser()
    add_class_args(p, with_background=True, found_in="the image labels")
    text = " ".join(p.format_help().split())
    assert "including background" in text and "VOC 21, COCO 81" in text
    p = argparse.ArgumentParser()
    add_class_args(p, with_background=False)
    text = " ".join(p.format_help().split())
    assert "background not counted" in text and "VOC 20, COCO 80" in text


def test_class_names():
    assert class_names(20) == VOC_CLASSES and class_names(80) == COCO_CLASSES
    assert class_names(80, "coco") == COCO_CLASSES
    assert class_names(3) == ("class1", "class2", "class3")
    names = segmentation_class_names(80)
    assert len(names) == 81 and names[0] == "background" and names[80] == "toothbrush"


def test_labelled_images_skip_images_without_a_class(tmp_path):
    path = tmp_path / "cls_labels.npy"
    save_npy(path, {"a": np.eye(80, dtype=np.float32)[79], "b": np.zeros(80, np.float32),
                    "c": np.ones(80, np.float32)})
    data = labelled_images(parse([], True), ["a", "b", "c", "b"], path)
    assert (data.ids, data.num_classes, data.unlabelled) == (["a", "c"], 80, 2)
    assert data.skipped == "2 without a labelled class skipped"
    assert data.labels["a"][79] == 1 and data.labels_path == path
    with pytest.raises(InputError, match="cls_labels.npy: no image label for id d"):
        labelled_images(parse([], True), ["a", "d"], path)
    with pytest.raises(InputError, match="cls_labels.npy: holds 80 foreground classes"):
        labelled_images(parse(["--dataset", "voc"], True), ["a"], path)
    without = labelled_images(parse(["--num_classes", "81"], True), ["x", "y"], None)
    assert (without.ids, without.num_classes, without.unlabelled) == (["x", "y"], 80, 0)


def test_class_flags_are_passed_on_as_given():
    assert class_flags(parse([], True)) == []
    assert class_flags(parse(["--dataset", "coco", "--num_classes", "81"], True)) == \
        ["--dataset", "coco", "--num_classes", "81"]
