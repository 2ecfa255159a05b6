"""Scoring of label maps, CAM dicts and CRF dicts against ground-truth label PNGs (what
eval_seg.py prints): one confusion matrix over the whole list (VOC protocol), per-class
IoU / precision / recall, and for CAMs a sweep of the background threshold in one pass."""
import json
import os

import numpy as np

from tool.cam.multiscale import CAM_BG_THRESHOLD, cam_foreground, threshold_foreground
from tool.core.cli import progress
from tool.core.io import (SETTINGS_FILE, InputError, cam_dict_to_array, load_cam_dict, load_json,
                          read_label_png)
from tool.data.classes import segmentation_class_names
from tool.data.voc import NUM_CLASSES, find_label
from tool.seg import metrics

PRED_EXTENSION = {"png": ".png", "cam": ".npy", "crf": ".npy"}
SWEEP_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 13))  # 0.05 .. 0.60


def read_settings(pred_dir):
    """The prediction folder's settings.json as a dict, or None when there is none."""
    path = os.path.join(pred_dir, SETTINGS_FILE)
    return load_json(path, "settings file") if os.path.isfile(path) else None


def read_score_dict(path, shape, num_keys):
    """A CAM or CRF dict whose keys are 0..num_keys-1 and whose maps are `shape`."""
    scores = load_cam_dict(path)
    for key, value in scores.items():
        if not 0 <= key < num_keys:
            raise InputError(f"{path}: dict key {key} out of range 0..{num_keys - 1}")
        if value.shape != tuple(shape):
            raise InputError(f"{path}: map of class {key} has size {value.shape} but the "
                             f"ground truth is {shape[0]}x{shape[1]}")
    return scores


def prediction_at(path, kind, shape, num_classes):
    """A function threshold -> label map for one prediction file (the threshold only
    matters for CAMs, whose argmax is computed once and thresholded many times)."""
    if kind == "png":
        label = read_label_png(path, num_classes, shape=shape)
        return lambda threshold: label
    if kind == "crf":
        label = metrics.crf_dict_to_prediction(read_score_dict(path, shape, num_classes))
        return lambda threshold: label
    cams = read_score_dict(path, shape, num_classes - 1)
    fg_score, fg_label = cam_foreground(cam_dict_to_array(cams, num_classes - 1, shape))
    return lambda threshold: threshold_foreground(fg_score, fg_label, threshold)


def accumulate(ids, gt_dir, pred_dir, kind, thresholds, num_classes, quiet):
    """{threshold: confusion matrix summed over all ids}."""
    confs = {t: np.zeros((num_classes, num_classes + 1), np.int64) for t in thresholds}
    for img_id in progress(ids, "eval_seg", disable=quiet):
        gt = read_label_png(find_label(gt_dir, img_id), num_classes)
        predict = prediction_at(os.path.join(pred_dir, img_id + PRED_EXTENSION[kind]),
                                kind, gt.shape, num_classes)
        for t in thresholds:
            confs[t] += metrics.confusion_matrix(predict(t), gt, num_classes)
    return confs


def _json_number(value):
    return None if np.isnan(value) else round(float(value), 4)


def scores_record(scores, class_names):
    per_class = {key: {name: _json_number(v) for name, v in zip(class_names, scores[key])}
                 for key in ("iou", "precision", "recall")}
    return {"miou": _json_number(scores["miou"]),
            "pixel_accuracy": _json_number(scores["pixel_accuracy"]), **per_class}


def evaluate_folder(ids, gt_dir, pred_dir, kind="png", bg_threshold=CAM_BG_THRESHOLD,
                    thresholds=None, num_classes=NUM_CLASSES + 1, class_names=None, quiet=True,
                    dataset=None):
    """Scores of the predictions in `pred_dir` (`<id>.png` label maps, or `<id>.npy` CAM /
    CRF dicts) against `gt_dir/<id>.png`: a JSON-ready dict with miou, pixel_accuracy,
    per-class iou/precision/recall (percent; None for classes absent from GT and
    prediction), settings (settings.json or None) and, with `thresholds` (cam only),
    sweep = {thresholds, miou, best_threshold, best_miou}; confusion_matrix is the
    accumulated (C, C + 1) matrix at bg_threshold (see tool.seg.metrics). num_classes counts
    the background; class_names default to those of `dataset` or of that many classes."""
    class_names = list(class_names or segmentation_class_names(num_classes - 1, dataset))
    if len(class_names) != num_classes:
        raise InputError(f"--class_names: {len(class_names)} names for {num_classes} classes")
    if kind not in PRED_EXTENSION:
        raise InputError(f"--type {kind}: expected one of {sorted(PRED_EXTENSION)}")
    if thresholds and kind != "cam":
        raise InputError(f"--sweep: thresholds apply to --type cam only, not {kind}")
    sweep = sorted(set(thresholds or ()))
    used = sorted(set(sweep) | {bg_threshold}) if kind == "cam" else [None]
    settings = read_settings(pred_dir)
    confs = accumulate(list(ids), gt_dir, pred_dir, kind, used, num_classes, quiet)
    main_conf = confs[bg_threshold if kind == "cam" else None]
    result = {"kind": kind, "num_images": len(ids), "num_classes": num_classes,
              "class_names": class_names, "pred_dir": str(pred_dir), "gt_dir": str(gt_dir),
              "bg_threshold": bg_threshold if kind == "cam" else None,
              "settings": settings, "confusion_matrix": main_conf.tolist(),
              **scores_record(metrics.segmentation_scores(main_conf), class_names)}
    if sweep:
        mious = [metrics.segmentation_scores(confs[t])["miou"] for t in sweep]
        best = int(np.argmax(np.nan_to_num(mious, nan=-1.0)))
        result["sweep"] = {"thresholds": sweep, "miou": [_json_number(m) for m in mious],
                           "best_threshold": sweep[best], "best_miou": _json_number(mious[best])}
    return result


def _shown(value):
    return "-" if value is None else f"{value:.2f}"


def summary_line(result):
    setting = f"{result['kind']}" + (f", bg {result['bg_threshold']:.2f}"
                                     if result["kind"] == "cam" else "")
    line = (f"eval_seg: {result['num_images']} images ({setting}): mIoU {_shown(result['miou'])}, "
            f"pixel acc {_shown(result['pixel_accuracy'])}")
    if "sweep" in result:
        line += (f"; best bg threshold {result['sweep']['best_threshold']:.2f}: "
                 f"mIoU {_shown(result['sweep']['best_miou'])}")
    if result["settings"] is not None:
        line += f"; settings {json.dumps(result['settings'], sort_keys=True)}"
    return line


def sweep_table(sweep):
    rows = [f"bg {t:.2f}  mIoU {_shown(m)}" for t, m in zip(sweep["thresholds"], sweep["miou"])]
    return "\n".join(rows)


def format_result(result):
    """Settings line, per-class table and sweep table as printed by main()."""
    scores = metrics.segmentation_scores(np.array(result["confusion_matrix"]))
    text = metrics.format_iou_table(scores, result["class_names"])
    if result["settings"] is not None:
        text = f"settings: {json.dumps(result['settings'], sort_keys=True)}\n{text}"
    if "sweep" in result:
        text += "\n" + sweep_table(result["sweep"])
    return text
