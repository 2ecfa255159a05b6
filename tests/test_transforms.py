"""Augmentations: sizes, value ranges, alignment of image and labels, reproducibility."""
import numpy as np
import pytest
import torch
from PIL import Image

from tool.data import transforms as T


def rng(seed=0):
    return np.random.default_rng(seed)


def random_rgb(h, w, seed=0):
    return rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def position_image(h, w):
    """(3, H, W) float image whose channels 0/1 hold row+1 / col+1 (0 means padding)."""
    rows, cols = np.mgrid[1:h + 1, 1:w + 1].astype(np.float32)
    return np.stack([rows, cols, np.ones_like(rows)])


@pytest.mark.parametrize("h,w", [(50, 70), (90, 40)])
def test_random_resize_long_draws_the_long_side_inclusive(h, w):
    seen = set()
    for seed in range(12):
        out = T.random_resize_long(random_rgb(h, w), 100, 101, rng(seed))
        long_side, short_side = max(out.shape[:2]), min(out.shape[:2])
        assert out.dtype == np.uint8 and out.shape[2] == 3
        assert (out.shape[0] > out.shape[1]) == (h > w)
        assert short_side == round(min(h, w) * long_side / max(h, w))
        seen.add(long_side)
    assert seen == {100, 101}


def test_random_resize_long_is_reproducible():
    a = T.random_resize_long(random_rgb(30, 40), 256, 512, rng(3))
    b = T.random_resize_long(random_rgb(30, 40), 256, 512, rng(3))
    np.testing.assert_array_equal(a, b)


def test_color_jitter_reproducible_and_random():
    img = random_rgb(20, 30)
    a, b = T.color_jitter(img, rng(1)), T.color_jitter(img, rng(1))
    c = T.color_jitter(img, rng(2))
    assert a.dtype == np.uint8 and a.shape == img.shape
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 1


def test_color_jitter_brightness_only_scales_pixels():
    img = np.full((4, 4, 3), 100, np.uint8)
    factors = set()
    for seed in range(10):
        out = T.color_jitter(img, rng(seed), brightness=0.3, contrast=0, saturation=0, hue=0)
        assert len(np.unique(out)) == 1 and 70 <= out[0, 0, 0] <= 130
        factors.add(int(out[0, 0, 0]))
    assert len(factors) > 3


def test_color_jitter_saturation_keeps_grey_grey():
    grey = np.repeat(random_rgb(8, 8)[..., :1], 3, axis=2)
    out = T.color_jitter(grey, rng(0), brightness=0, contrast=0, saturation=0.9, hue=0)
    np.testing.assert_array_equal(out, grey)


def test_hue_shift_turns_red_towards_green():
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    out = np.asarray(T.shift_hue(Image.fromarray(red), 1 / 3))
    assert out[0, 0, 1] > 200 and out[0, 0, 0] < 60 and out[0, 0, 2] < 60


def test_hflip_and_random_hflip():
    img, lab = random_rgb(5, 7), np.arange(35).reshape(5, 7)
    flipped = T.hflip(img)
    np.testing.assert_array_equal(flipped[:, 0], img[:, -1])
    np.testing.assert_array_equal(T.hflip(flipped), img)
    outcomes = set()
    for seed in range(10):
        f_img, f_lab = T.random_hflip(rng(seed), img, lab)
        flipped_now = not np.array_equal(f_lab, lab)
        np.testing.assert_array_equal(f_img, T.hflip(img) if flipped_now else img)
        outcomes.add(flipped_now)
    assert outcomes == {True, False}


def test_random_crop_larger_image_takes_one_window_for_all():
    image = position_image(40, 50)
    rows, cols = np.mgrid[0:40, 0:50]
    label = (rows * 50 + cols).astype(np.int32)
    tops = set()
    for seed in range(8):
        crop, lab = T.random_crop(image, 16, rng(seed), labels=(label,))
        assert crop.shape == (3, 16, 16) and crop.dtype == np.float32 and lab.shape == (16, 16)
        top, left = int(crop[0, 0, 0]) - 1, int(crop[1, 0, 0]) - 1
        np.testing.assert_array_equal(crop, image[:, top:top + 16, left:left + 16])
        np.testing.assert_array_equal(lab, label[top:top + 16, left:left + 16])
        tops.add(top)
    assert len(tops) > 1


@pytest.mark.parametrize("pad_at", ["random", "top_left"])
def test_random_crop_pads_image_with_zero_and_labels_with_pad(pad_at):
    image = position_image(10, 30)
    seg = np.ones((10, 30), np.uint8)
    scores = np.ones((10, 30, 2), np.float32)
    offsets = set()
    for seed in range(10):
        crop, c_seg, c_scores = T.random_crop(image, 20, rng(seed), labels=(seg, scores),
                                              label_pad=(255, 0), pad_at=pad_at)
        content = crop[2] == 1
        assert content.sum() == 10 * 20 and (crop[:, ~content] == 0).all()
        assert (c_seg[content] == 1).all() and (c_seg[~content] == 255).all()
        assert c_scores.shape == (20, 20, 2) and (c_scores[~content] == 0).all()
        offsets.add(int(np.argmax(content[:, 0])))
    assert (len(offsets) > 1) == (pad_at == "random")
    if pad_at == "top_left":
        assert offsets == {0}


def test_random_crop_rejects_unknown_placement():
    with pytest.raises(ValueError):
        T.random_crop(position_image(4, 4), 8, rng(), pad_at="centre")


def test_random_scale_truncates_sizes_and_keeps_label_values():
    img = random_rgb(61, 85)
    seg = np.zeros((61, 85), np.uint8)
    seg[10:40, 20:60] = 7
    seg[0:5] = 255
    out, out_seg = T.random_scale(img, 0.7, labels=(seg,))
    assert out.shape == (42, 59, 3) and out.dtype == np.float32 and out_seg.shape == (42, 59)
    assert set(np.unique(out_seg).tolist()) == {0, 7, 255}
    assert 0 <= out.min() and out.max() <= 255
    bigger = T.random_scale(img[..., 0], 1.3, interpolation="bicubic")
    assert bigger.shape == (79, 110)


@torch.random.fork_rng()
def test_worker_rng_follows_torch_seed():
    torch.manual_seed(7)
    first = T.worker_rng().random(3)
    assert not np.array_equal(T.worker_rng().random(3), first)
    torch.manual_seed(8)
    other = T.worker_rng().random(3)
    torch.manual_seed(7)
    np.testing.assert_array_equal(T.worker_rng().random(3), first)
    assert not np.array_equal(other, first)
