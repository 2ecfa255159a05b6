"""Confusion matrix, split-level scores and the psa CAM-to-label rule (tool/seg/metrics.py)."""
import json

import numpy as np
import pytest

from golden import load_golden, needs_golden
from tool.cam.multiscale import CAM_BG_THRESHOLD, cam_prediction
from tool.core.io import cam_dict_to_array
from tool.data.voc import NUM_CLASSES
from tool.seg import metrics

# 3x4 toy example, classes 0..2, 255 = ignore (GT) / unlabelled (prediction).
TOY_GT = np.array([[0, 0, 1, 1],
                   [0, 255, 1, 2],
                   [2, 2, 255, 1]])
TOY_PRED = np.array([[0, 1, 1, 1],
                     [0, 0, 2, 2],
                     [2, 0, 1, 255]])
# Rows: GT class; columns: predicted 0, 1, 2, unlabelled. Counted by hand pixel by pixel;
# the two GT-255 pixels are skipped whatever their prediction.
TOY_CONF = np.array([[2, 1, 0, 0],
                     [0, 2, 1, 1],
                     [1, 0, 2, 0]])


def test_toy_confusion_matrix_by_hand():
    np.testing.assert_array_equal(metrics.confusion_matrix(TOY_PRED, TOY_GT, 3), TOY_CONF)


def test_toy_scores_by_hand():
    s = metrics.segmentation_scores(TOY_CONF)
    # IoU = TP / (GT pixels + predicted pixels - TP): 2/(3+3-2), 2/(4+3-2), 2/(3+3-2)
    np.testing.assert_allclose(s["iou"], [50.0, 40.0, 50.0])
    np.testing.assert_allclose(s["precision"], [200 / 3, 200 / 3, 200 / 3])
    np.testing.assert_allclose(s["recall"], [200 / 3, 50.0, 200 / 3])
    assert s["miou"] == pytest.approx(140 / 3)
    assert s["pixel_accuracy"] == pytest.approx(60.0)  # 6 correct of 10 non-ignored


def test_absent_class_is_nan_and_left_out_of_the_mean():
    s = metrics.segmentation_scores(metrics.confusion_matrix(TOY_PRED, TOY_GT, 5))
    assert np.isnan(s["iou"][3:]).all() and np.isnan(s["recall"][4])
    assert s["miou"] == pytest.approx(140 / 3)


def test_class_only_predicted_counts_as_zero_iou():
    s = metrics.segmentation_scores(metrics.confusion_matrix([[0, 3]], [[0, 0]], 4))
    assert s["iou"][3] == 0.0 and np.isnan(s["recall"][3])
    assert s["miou"] == pytest.approx(25.0)  # (50 + 0) / 2 classes that appear


def test_split_matrix_is_the_sum_not_a_mean_of_image_ious():
    a_gt, a_pred = np.array([[1, 1, 1, 0]]), np.array([[1, 1, 1, 0]])
    b_gt, b_pred = np.array([[1, 0]]), np.array([[0, 0]])
    conf = metrics.confusion_matrix(a_pred, a_gt, 2) + metrics.confusion_matrix(b_pred, b_gt, 2)
    whole = metrics.confusion_matrix(np.hstack([a_pred, b_pred]), np.hstack([a_gt, b_gt]), 2)
    np.testing.assert_array_equal(conf, whole)
    # split: class 0 TP 2 of union 3, class 1 TP 3 of union 4 -> (2/3 + 3/4) / 2
    assert metrics.segmentation_scores(conf)["miou"] == pytest.approx(100 * (2 / 3 + 3 / 4) / 2)


@pytest.mark.parametrize("pred, gt", [([[0, 7]], [[0, 1]]), ([[0, 1]], [[0, 9]]),
                                      ([[0, 1, 1]], [[0, 1]])])
def test_bad_values_or_shapes_raise(pred, gt):
    with pytest.raises(ValueError):
        metrics.confusion_matrix(pred, gt, 3)


def test_table_marks_absent_classes():
    s = metrics.segmentation_scores(metrics.confusion_matrix(TOY_PRED, TOY_GT, 4))
    lines = metrics.format_iou_table(s, ["background", "cat", "dog", "cow"]).splitlines()
    assert lines[2].split() == ["cat", "40.00", "66.67", "50.00"]
    assert lines[4].split() == ["cow", "-", "-", "-"]
    assert lines[-2].split() == ["mIoU", "46.67"]


def cam_dict_prediction(cams, shape, bg_threshold=CAM_BG_THRESHOLD):
    """psa's cam_pred of a CAM dict, as infer_cls.py computes it."""
    return cam_prediction(cam_dict_to_array(cams, NUM_CLASSES, shape), bg_threshold)


def test_cam_prediction_threshold_and_ties():
    cams = {2: np.array([[0.5, 0.1, 0.2]], np.float32), 7: np.array([[0.6, 0.15, 0.0]], np.float32)}
    # pixel 0: class 7 wins (label 8); pixel 1: both below 0.2 -> bg; pixel 2: tie at 0.2 -> bg
    np.testing.assert_array_equal(cam_dict_prediction(cams, (1, 3), 0.2), [[8, 0, 0]])
    np.testing.assert_array_equal(cam_dict_prediction(cams, (1, 3), 0.12), [[8, 8, 3]])
    np.testing.assert_array_equal(cam_dict_prediction({}, (1, 3), 0.2), [[0, 0, 0]])


def test_crf_dict_prediction_uses_keys():
    crf = {0: np.array([[0.9, 0.1, 0.2]]), 3: np.array([[0.05, 0.8, 0.1]]),
           12: np.array([[0.05, 0.1, 0.7]])}
    np.testing.assert_array_equal(metrics.crf_dict_to_prediction(crf), [[0, 3, 12]])


@needs_golden
def test_cam_prediction_matches_psa_cam_pred():
    g = load_golden("e2e_psa_infer_cls.npz")
    for img_id in json.loads(str(g["meta"]))["ids"]:
        cams = dict(zip(g[f"{img_id}__cam_keys"].tolist(), g[f"{img_id}__cam"]))
        expected = g[f"{img_id}__cam_pred"]
        pred = cam_dict_prediction(cams, expected.shape)
        np.testing.assert_array_equal(pred, expected, err_msg=img_id)
