"""Segmentation scores from ONE confusion matrix accumulated over a whole split (the VOC
protocol; not a mean of per-image IoUs), the prediction of a CRF dict, and the printed
per-class table.

Confusion matrix layout: rows are ground-truth classes, columns predicted classes, plus
one last column for pixels the prediction leaves unlabelled (value 255, e.g. pseudo labels
with "not sure" pixels). Those count as misses of their ground-truth class (they lower its
recall and IoU) and as nobody's false positive. Ground-truth pixels labelled 255 are skipped.

Classes that appear neither in the ground truth nor in the prediction have no IoU (NaN);
mIoU is the mean over the classes that do appear, so a split without, say, any cow is not
penalised for it. On a full VOC split every class appears, and this is the usual mean
over all 21 classes (COCO: 81). All scores are in percent."""
import numpy as np

from tool.core.io import IGNORE_LABEL


def confusion_matrix(pred, gt, num_classes, ignore_index=IGNORE_LABEL):
    """(num_classes, num_classes + 1) int64 pixel counts of (gt class, predicted class);
    the last column counts prediction == ignore_index. Raises ValueError for a shape
    mismatch or for values outside 0..num_classes-1 that are not ignore_index."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} != ground truth shape {gt.shape}")
    keep = gt != ignore_index
    gt = gt[keep].astype(np.int64)
    pred = pred[keep].astype(np.int64)
    pred[pred == ignore_index] = num_classes
    checks = (("ground truth", gt, num_classes), ("prediction", pred, num_classes + 1))
    for name, values, top in checks:
        if values.size and (values.min() < 0 or values.max() >= top):
            raise ValueError(f"{name} has values outside 0..{num_classes - 1} and {ignore_index}")
    counts = np.bincount(gt * (num_classes + 1) + pred, minlength=num_classes * (num_classes + 1))
    return counts.reshape(num_classes, num_classes + 1)


def _percent(numerator, denominator):
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, 100.0 * numerator / denominator, np.nan)


def segmentation_scores(conf):
    """Scores of a (C, C) or (C, C + 1) confusion matrix: per-class `iou` (TP/(TP+FP+FN)),
    `precision` (TP/(TP+FP)), `recall` (TP/(TP+FN)) as arrays with NaN where undefined,
    `miou` (NaN-mean of iou over classes present in GT or prediction) and
    `pixel_accuracy` (correct / all non-ignored GT pixels), all in percent."""
    conf = np.asarray(conf, np.int64)
    num_classes = conf.shape[0]
    tp = np.diag(conf[:, :num_classes])
    gt_pixels = conf.sum(axis=1)
    pred_pixels = conf[:, :num_classes].sum(axis=0)
    iou = _percent(tp, gt_pixels + pred_pixels - tp)
    return {
        "iou": iou,
        "precision": _percent(tp, pred_pixels),
        "recall": _percent(tp, gt_pixels),
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "pixel_accuracy": float(_percent(tp.sum(), gt_pixels.sum())),
    }


def object_precision_recall(conf):
    """(precision, recall) in % of the object pixels of a (C, C + 1) confusion matrix,
    counting a pixel right only with its class: sum TP_c / sum predicted_c and
    sum TP_c / sum ground truth_c over the object classes (unlabelled predictions count
    as misses)."""
    conf = np.asarray(conf, np.int64)
    classes = conf.shape[0]
    true_pos = np.trace(conf[1:, 1:classes])
    predicted = conf[:, 1:classes].sum()
    actual = conf[1:, :].sum()
    return 100.0 * true_pos / max(predicted, 1), 100.0 * true_pos / max(actual, 1)


def _cell(value):
    return "-" if np.isnan(value) else f"{value:.2f}"


def format_iou_table(scores, class_names):
    """A printable per-class table (IoU, precision, recall; '-' where a class is absent)
    ending with the mIoU and pixel-accuracy lines."""
    width = max(len(name) for name in list(class_names) + ["pixel acc"])
    lines = [f"{'class':<{width}}  {'IoU':>7}  {'prec':>7}  {'recall':>7}"]
    for c, name in enumerate(class_names):
        lines.append(f"{name:<{width}}  {_cell(scores['iou'][c]):>7}  "
                     f"{_cell(scores['precision'][c]):>7}  {_cell(scores['recall'][c]):>7}")
    lines.append(f"{'mIoU':<{width}}  {_cell(scores['miou']):>7}")
    lines.append(f"{'pixel acc':<{width}}  {_cell(scores['pixel_accuracy']):>7}")
    return "\n".join(lines)


def crf_dict_to_prediction(crf_dict):
    """Label map from a CRF-style dict {0: background, k + 1: class k} (psa la/ha CRF
    output): the key of the highest score per pixel."""
    keys = np.array(sorted(crf_dict), np.uint8)
    scores = np.stack([crf_dict[k] for k in keys])
    return keys[scores.argmax(axis=0)]
