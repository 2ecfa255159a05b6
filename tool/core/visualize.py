"""Overlays people look at: CAM heatmaps, label maps blended over the image, and a grid
of rows (image, ground truth, CAM, pseudo label, prediction) for the demo."""
import cv2
import numpy as np
from PIL import Image, ImageDraw

from tool.core.io import IGNORE_LABEL, VOC_PALETTE, save_rgb

PALETTE_RGB = np.array(VOC_PALETTE, np.uint8).reshape(-1, 3)
IGNORE_RGB = (255, 255, 255)


def heatmap(score):
    """(H, W) scores in [0, 1] → jet-coloured RGB uint8."""
    gray = np.clip(np.asarray(score, np.float32) * 255, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(gray, cv2.COLORMAP_JET)[:, :, ::-1]


def blend(rgb, colours, alpha=0.5):
    mixed = (1 - alpha) * np.asarray(rgb, np.float32) + alpha * np.asarray(colours, np.float32)
    return mixed.astype(np.uint8)


def cam_overlay(rgb, cam, alpha=0.5):
    """One CAM (H, W) over the image; for a dict of CAMs pass their per-pixel max."""
    return blend(rgb, heatmap(cam), alpha)


def colorize_label(label):
    """Label map → RGB with the VOC palette; ignore (255) shown white."""
    label = np.asarray(label)
    out = PALETTE_RGB[label]
    out[label == IGNORE_LABEL] = IGNORE_RGB
    return out


def label_overlay(rgb, label, alpha=0.6):
    return blend(rgb, colorize_label(label), alpha)


def cam_dict_overlay(rgb, cams):
    """Heatmap overlay of the per-pixel max over a CAM dict's maps."""
    return cam_overlay(rgb, np.max(np.stack(list(cams.values())), axis=0))


def save_cam_overlay(path, rgb, cams):
    """Write `cam_dict_overlay` to `path`."""
    save_rgb(path, cam_dict_overlay(rgb, cams))


def image_grid(rows, titles, cell_height=120):
    """rows: lists of RGB images (any sizes) → one RGB grid, columns titled."""
    def fit(img):
        h, w = img.shape[:2]
        width = max(1, round(w * cell_height / h))
        return np.asarray(Image.fromarray(img).resize((width, cell_height), Image.NEAREST))

    fitted = [[fit(img) for img in row] for row in rows]
    col_w = [max(row[c].shape[1] for row in fitted) for c in range(len(titles))]
    title_h, pad = 16, 4
    canvas = Image.new("RGB", (sum(col_w) + pad * (len(col_w) + 1),
                               title_h + len(rows) * (cell_height + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    x = pad
    for c, title in enumerate(titles):
        draw.text((x, 2), title, fill="black")
        for r, row in enumerate(fitted):
            canvas.paste(Image.fromarray(row[c]), (x, title_h + pad + r * (cell_height + pad)))
        x += col_w[c] + pad
    return np.asarray(canvas)
