"""Multi-scale class activation maps (psa `infer_cls.py`), shared by `infer_cls.py`,
`split_img.py` and `infer_cam.py`. Works with any network that has `forward_cam(x)`
returning (B, C, h, w) non-negative maps."""
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from network.resnet38d import normalize_image
from tool.core.io import InputError
from tool.core.precision import DEFAULT_PRECISION, precision_context
from tool.data.classes import LABEL_PRESENT

CAM_SCALES = (1.0, 0.5, 1.5, 2.0)  # psa infer_cls.py
CAM_NORM_EPS = 1e-5  # added to each class's spatial max before dividing
CAM_BG_THRESHOLD = 0.2  # psa's constant background score for CAM predictions


def rounded_scaled_hw(height, width, scale):
    """(h, w) of an image resized by `scale`, with Python's ties-to-even round as psa."""
    return round(height * scale), round(width * scale)


def check_scales(path, shape, scales):
    """InputError naming the image when one of `scales` resizes it to nothing."""
    height, width = shape[:2]
    empty = [s for s in scales if min(rounded_scaled_hw(height, width, s)) < 1]
    if empty:
        raise InputError(f"{path}: image is {height}x{width}, empty at scale {empty[0]:g}; "
                         "use larger --scales or a larger image")


def scaled_inputs(rgb, scales=CAM_SCALES):
    """Normalised (3, h, w) float32 inputs of the uint8 RGB image at each scale
    (PIL bicubic resize of the uint8 image, then normalisation)."""
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    height, width = image.height, image.width
    inputs = []
    for scale in scales:
        h, w = rounded_scaled_hw(height, width, scale)
        if h < 1 or w < 1:
            raise ValueError(f"scale {scale} of a {height}x{width} image is empty")
        resized = image if (h, w) == (height, width) else image.resize((w, h), Image.BICUBIC)
        inputs.append(normalize_image(np.asarray(resized)))
    return inputs


def with_flips(inputs):
    """psa's order: each input followed by its horizontal mirror."""
    out = []
    for x in inputs:
        out += [x, np.ascontiguousarray(x[:, :, ::-1])]
    return out


def summed_cams(net, inputs, size, label, device, flipped=None, precision=DEFAULT_PRECISION):
    """Sum over `inputs` of forward_cam upsampled bilinearly to `size` (H, W), multiplied
    by the image label and mirrored back for flipped inputs (by default every odd index,
    the order of `with_flips`). Inputs of one shape run as one batch."""
    if flipped is None:
        flipped = [i % 2 == 1 for i in range(len(inputs))]
    return summed_cams_many(net, [inputs], [size], label, device, [flipped], precision)[0]


def shape_groups(input_lists):
    """{shape: [(list index, input index), ...]} over all inputs of all lists, in order of
    first appearance: what can run as one batch."""
    groups = {}
    for i, inputs in enumerate(input_lists):
        for j, x in enumerate(inputs):
            groups.setdefault(tuple(x.shape), []).append((i, j))
    return groups


def summed_cams_many(net, input_lists, sizes, label, device, flipped_lists,
                     precision=DEFAULT_PRECISION):
    """`summed_cams` of several lists of inputs (e.g. the crops of one image) at once:
    inputs of one shape run as one batch whichever list they come from, so each weight
    is read once per shape instead of once per input. Each list's sum is the one
    `summed_cams` gives it alone (same rows, same order). Returns one (C, H_i, W_i)
    tensor per list (None for an empty list). Only the forwards run at `precision`; under
    an enclosing bf16 context (the same), autocast casts each weight once for all."""
    label_t = torch.as_tensor(np.asarray(label, np.float32), device=device).view(1, -1, 1, 1)
    totals = [None] * len(input_lists)
    for members in shape_groups(input_lists).values():
        batch = torch.from_numpy(np.stack([input_lists[i][j] for i, j in members])).to(device)
        with precision_context(device, precision):
            maps = net.forward_cam(batch)
        maps = maps.float()
        start = 0
        while start < len(members):  # the rows of one list are consecutive
            i = members[start][0]
            stop = start + 1
            while stop < len(members) and members[stop][0] == i:
                stop += 1
            cams = F.interpolate(maps[start:stop], size=tuple(sizes[i]), mode="bilinear",
                                 align_corners=False) * label_t
            flips = torch.tensor([flipped_lists[i][j] for _, j in members[start:stop]],
                                 device=device).view(-1, 1, 1, 1)
            cams = torch.where(flips, cams.flip(-1), cams).sum(0)
            totals[i] = cams if totals[i] is None else totals[i] + cams
            start = stop
    return totals


def normalize_cam(cam):
    """Divide each class map by (its spatial max + 1e-5)."""
    peak = cam.flatten(1).max(dim=1).values.view(-1, 1, 1)
    return cam / (peak + CAM_NORM_EPS)


@torch.no_grad()  # not inference_mode: autocast caches its weight casts only here
def multiscale_cam(net, rgb, label, scales=CAM_SCALES, device="cpu",
                   precision=DEFAULT_PRECISION):
    """psa's multi-scale + flip CAM of one image: (C, H, W) float32 in [0, 1], exactly
    zero for classes not in `label`; the forwards at `precision` (tool/core/precision.py)."""
    rgb = np.asarray(rgb)
    inputs = with_flips(scaled_inputs(rgb, scales))
    with precision_context(device, precision):  # bf16: each weight cast once per image
        cam = summed_cams(net, inputs, rgb.shape[:2], label, torch.device(device),
                          precision=precision)
    return normalize_cam(cam).cpu().numpy()


def present_classes(label):
    return [int(c) for c in np.nonzero(np.asarray(label) > LABEL_PRESENT)[0]]


def multi_hot(classes, num_classes):
    """The image label (num_classes,) float32 with 1 at `classes`."""
    label = np.zeros(num_classes, np.float32)
    label[list(classes)] = 1
    return label


def cam_dict_from_array(norm_cam, label):
    """The saved CAM format: {class index: (H, W) float32} for the classes in `label`."""
    return {c: np.asarray(norm_cam[c], np.float32) for c in present_classes(label)}


def cam_foreground(norm_cam):
    """Per pixel, the best class score and its label (class c → c + 1) of a dense
    (C, H, W) CAM array; ties go to the lower class, as numpy's argmax."""
    norm_cam = np.asarray(norm_cam)
    return norm_cam.max(axis=0), norm_cam.argmax(axis=0).astype(np.uint8) + 1


def threshold_foreground(fg_score, fg_label, bg_threshold=CAM_BG_THRESHOLD):
    """psa's argmax over [constant background score; class CAMs]: a pixel takes its best
    class only when that score exceeds the background (background wins ties), compared
    in the scores' float32 precision."""
    return np.where(fg_score > np.float32(bg_threshold), fg_label, 0).astype(np.uint8)


def cam_prediction(norm_cam, bg_threshold=CAM_BG_THRESHOLD):
    """Label map of a dense (C, H, W) CAM array: 0 background, class c becomes c + 1."""
    return threshold_foreground(*cam_foreground(norm_cam), bg_threshold)
