"""Multi-scale CAM against psa infer_cls.py (golden case 6a)."""
import numpy as np
import pytest
import torch
from PIL import Image

from golden import GOLDEN, assert_close, load_golden, needs_golden
from network import resnet38_cls
from tool.cam import multiscale as camlib

IDS = ["2007_000001", "2007_000002", "2007_000003", "2007_000004"]


@pytest.fixture(scope="module")
def golden_cls():
    return load_golden("e2e_psa_infer_cls.npz")


def golden_rgb(img_id):
    return np.asarray(Image.open(GOLDEN / "dataset" / "JPEGImages" / f"{img_id}.jpg").convert("RGB"))


@needs_golden
def test_scaled_inputs_round_ties_to_even(golden_cls):
    inputs = camlib.scaled_inputs(golden_rgb("2007_000004"))
    for i, x in enumerate(inputs):
        assert_close(x, golden_cls[f"2007_000004__msf_input_s{i}"], atol=1e-6, rtol=0,
                     name=f"scale {i}")


@needs_golden
@pytest.mark.parametrize("img_id", IDS)
def test_multiscale_cam_dict_and_prediction(golden_cls, cls_net, img_id):
    label = golden_cls[f"{img_id}__label"]
    norm_cam = camlib.multiscale_cam(cls_net, golden_rgb(img_id), label)
    cams = camlib.cam_dict_from_array(norm_cam, label)
    assert list(cams) == golden_cls[f"{img_id}__cam_keys"].tolist()
    assert_close(np.stack(list(cams.values())), golden_cls[f"{img_id}__cam"], atol=5e-5, rtol=0,
                 name=f"{img_id} cam")
    pred = camlib.cam_prediction(norm_cam)
    ref = golden_cls[f"{img_id}__cam_pred"]
    full = np.concatenate([np.full((1,) + norm_cam.shape[1:], 0.2, np.float32), norm_cam])
    top2 = np.sort(full, axis=0)[-2:]
    unsure = (top2[1] - top2[0]) < 1e-4
    assert np.all((pred == ref) | unsure), f"{img_id}: {int(((pred != ref) & ~unsure).sum())} pixels differ"


def test_unlabelled_classes_are_zero_and_max_is_one():
    net = resnet38_cls.Net(width=0.125).eval()
    rgb = np.random.default_rng(0).integers(0, 255, (40, 72, 3), dtype=np.uint8)
    label = np.zeros(20, np.float32)
    label[[3, 7]] = 1
    cam = camlib.multiscale_cam(net, rgb, label)
    assert cam.shape == (20, 40, 72)
    assert np.all(cam[[c for c in range(20) if c not in (3, 7)]] == 0)
    assert np.all(cam >= 0) and cam.max() <= 1.0
    assert set(camlib.cam_dict_from_array(cam, label)) == {3, 7}


def test_flip_pairs_are_mirrored_back():
    """A network whose CAM is the input's first channel: mirrored inputs mirrored back
    must add up to twice the plain CAM at scale 1."""

    class FirstChannel(torch.nn.Module):
        def forward_cam(self, x):
            return x[:, :1].repeat(1, 20, 1, 1).clamp(min=0)

    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:, :6] = 255
    label = np.ones(20, np.float32)
    inputs = camlib.with_flips(camlib.scaled_inputs(rgb, (1.0,)))
    total = camlib.summed_cams(FirstChannel(), inputs, (16, 24), label, torch.device("cpu"))
    single = camlib.summed_cams(FirstChannel(), inputs[:1], (16, 24), label, torch.device("cpu"))
    torch.testing.assert_close(total, 2 * single)
