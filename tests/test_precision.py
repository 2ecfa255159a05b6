"""--precision: fp32 changes nothing, bf16 runs the forwards in bfloat16 and stays within
the stated tolerance of fp32 on the recipe networks (golden images)."""
import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from golden import GOLDEN, load_golden, load_recipe, needs_golden
from network import resnet38_aff, resnet38_cls
from tool.cam import multiscale as camlib
from tool.core.precision import PRECISIONS, add_precision_arg, precision_context
from tool.psa import random_walk as rw

BF16_CAM_ATOL = 0.05  # bf16 multi-scale CAMs (in [0, 1]) within 5 % of the range of fp32
BF16_SAME_LABELS = 0.98  # at least this fraction of CAM-prediction / walk labels unchanged
CPU = torch.device("cpu")


def test_precision_flag_defaults_to_fp32():
    parser = argparse.ArgumentParser()
    add_precision_arg(parser)
    assert parser.parse_args([]).precision == "fp32"
    assert parser.parse_args(["--precision", "bf16"]).precision == "bf16"
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp16"])
    assert PRECISIONS == ("fp32", "bf16")


def test_fp32_changes_nothing_and_bf16_computes_in_bfloat16():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(1, 3, 8, 8)
    with torch.inference_mode():
        plain = conv(x)
        with precision_context(CPU, "fp32"):
            fp32 = conv(x)
        with precision_context(CPU, "bf16"):
            bf16 = conv(x)
    assert torch.equal(fp32, plain)
    assert bf16.dtype == torch.bfloat16
    torch.testing.assert_close(bf16.float(), plain, atol=0.05, rtol=0.02)
    with pytest.raises(ValueError, match="precision must be one of"):
        precision_context(CPU, "fp16")


@pytest.fixture(scope="module")
def recipe_nets():
    return load_recipe(resnet38_cls.Net()), load_recipe(resnet38_aff.Net())


@needs_golden
@pytest.mark.parametrize("img_id", ["2007_000002", "2007_000004"])
def test_bf16_cams_and_walk_labels_stay_close_to_fp32(recipe_nets, img_id):
    cls_net, aff_net = recipe_nets
    rgb = np.asarray(Image.open(GOLDEN / "dataset" / "JPEGImages" / f"{img_id}.jpg")
                     .convert("RGB"))
    label = load_golden("e2e_psa_infer_cls.npz")[f"{img_id}__label"]
    cams = {p: camlib.multiscale_cam(cls_net, rgb, label, precision=p) for p in PRECISIONS}
    assert cams["bf16"].dtype == np.float32
    diff = np.abs(cams["bf16"] - cams["fp32"]).max()
    assert 0 < diff < BF16_CAM_ATOL  # bf16 did run, and stayed close
    same_pred = camlib.cam_prediction(cams["bf16"]) == camlib.cam_prediction(cams["fp32"])
    assert same_pred.mean() >= BF16_SAME_LABELS
    walks = {p: rw.random_walk_label(aff_net, rgb, camlib.cam_dict_from_array(cams[p], label),
                                     precision=p) for p in PRECISIONS}
    assert (walks["bf16"] == walks["fp32"]).mean() >= BF16_SAME_LABELS
