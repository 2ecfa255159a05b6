"""Backbone and classifier against the original psa code's outputs (golden cases 1, 2)."""
import json

import numpy as np
import pytest
import torch

from golden import GOLDEN, assert_close, load_golden, needs_golden, recipe_value
from network import resnet38_cls, resnet38d

pytestmark = needs_golden


@pytest.fixture(scope="module")
def manifest():
    return json.loads((GOLDEN / "weights_manifest.json").read_text())


def test_key_order_matches_original(manifest):
    order = manifest["state_dict_keys_in_order"]
    assert list(resnet38d.Net().state_dict()) == order["psa.resnet38d.Net"]
    assert list(resnet38_cls.Net().state_dict()) == order["psa.resnet38_cls.Net"]


def test_recipe_matches_manifest(manifest):
    for name in ("conv1a.weight", "b4_3.conv_branch2b1.weight", "bn7.running_var", "fc8.weight"):
        entry = manifest["entries"][name]
        v = recipe_value(name, tuple(entry["shape"]))
        assert bool(entry["rule_scaled"]) == name.endswith("b4_3.conv_branch2b1.weight")
        np.testing.assert_allclose(v.ravel()[:4], entry["first4"], rtol=1e-6)
        np.testing.assert_allclose(v.astype(np.float64).sum(), entry["sum"], rtol=1e-5)


@pytest.mark.parametrize("case", ["s56x72", "s45x61"])
def test_backbone_forward_as_dict(cls_net, case):
    g = load_golden("net_psa_resnet38d.npz")
    with torch.inference_mode():
        out = resnet38d.Net.forward_as_dict(cls_net, torch.from_numpy(g[f"{case}__input"]))
    for key in ("conv4", "conv5", "conv6"):
        assert_close(out[key].numpy(), g[f"{case}__{key}"], name=f"{case} {key}")


@pytest.mark.parametrize("case", ["s56x72", "s45x61", "b2_s48x64"])
def test_classifier_logits_and_cam(cls_net, case):
    g = load_golden("net_psa_resnet38_cls.npz")
    x = torch.from_numpy(g[f"{case}__input"])
    with torch.inference_mode():
        assert_close(cls_net(x).numpy(), g[f"{case}__logits"], name=f"{case} logits")
        assert_close(cls_net.forward_cam(x).numpy(), g[f"{case}__cam"], name=f"{case} cam")


def test_train_mode_keeps_batchnorm_frozen(cls_net):
    net = resnet38_cls.Net(width=0.125).train()
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)
    assert not any(p.requires_grad for p in net.conv1a.parameters())
    assert not any(p.requires_grad for p in net.b2_2.parameters())
    assert all(p.requires_grad for p in net.b3.conv_branch2a.parameters())
    cls_net.eval()


def test_width_keeps_key_names():
    full = resnet38_cls.Net().state_dict()
    slim = resnet38_cls.Net(width=0.125).state_dict()
    assert list(full) == list(slim)
    assert slim["fc8.weight"].shape == (20, 512, 1, 1)
