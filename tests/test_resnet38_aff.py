"""AffinityNet against psa's resnet38_aff (golden case 4) and its training-time contract."""
import functools
import json

import numpy as np
import pytest
import torch

from golden import GOLDEN, assert_close, load_golden, load_recipe, needs_golden
from network import resnet38_aff
from tool.psa.random_walk import cpu_threads

AFF_TOL = dict(atol=1e-6, rtol=1e-4)  # golden README §5, affinities


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Single-threaded: on shared cores thread hand-offs cost more than they save."""
    with cpu_threads(1):
        yield


@functools.lru_cache(maxsize=1)
def recipe_aff_net():
    """The full-width AffinityNet with the golden weight recipe, built once per session
    (test_random_walk.py uses it too)."""
    return load_recipe(resnet38_aff.Net())


@pytest.fixture(scope="module")
def aff_net():
    return recipe_aff_net()


@needs_golden
def test_key_order_matches_original():
    manifest = json.loads((GOLDEN / "weights_manifest.json").read_text())
    keys = manifest["state_dict_keys_in_order"]["psa.resnet38_aff.Net"]
    assert list(resnet38_aff.Net(width=0.125).state_dict()) == keys


@needs_golden
@pytest.mark.parametrize("case", ["s64x72", "s77x93"])
def test_sparse_and_dense_affinities(aff_net, case):
    g = load_golden("net_psa_resnet38_aff.npz")
    x = torch.from_numpy(g[f"{case}__input"])
    with torch.inference_mode():
        sparse = aff_net(x)
        dense = aff_net(x, to_dense=True)
    assert_close(sparse.numpy(), g[f"{case}__aff_sparse"], name=f"{case} sparse", **AFF_TOL)
    assert_close(dense.numpy(), g[f"{case}__aff_dense"], name=f"{case} dense", **AFF_TOL)


def test_width_scales_feature_layers_consistently():
    net = resnet38_aff.Net(width=0.125)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items() if k.startswith("f")}
    assert shapes == {"f8_3.weight": (8, 64, 1, 1), "f8_4.weight": (16, 128, 1, 1),
                      "f8_5.weight": (32, 512, 1, 1), "f9.weight": (56, 56, 1, 1)}


def test_affinities_are_in_unit_interval_and_dense_is_symmetric():
    torch.manual_seed(0)
    net = resnet38_aff.Net(width=0.125).eval()
    x = torch.randn(1, 3, 40, 72)
    with torch.inference_mode():
        sparse = net(x)
        dense = net(x, to_dense=True)
    assert sparse.shape == (1, 34, 1)  # 5x9 map: a single "from" pixel
    assert torch.all((sparse > 0) & (sparse <= 1))
    assert torch.equal(dense, dense.T)
    assert torch.all(dense.diagonal() == 1)
    assert int((dense > 0).sum()) == 45 + 2 * 34


def test_too_small_feature_map_is_a_clear_error():
    net = resnet38_aff.Net(width=0.125).eval()
    with pytest.raises(ValueError, match="at least 5 high and 9 wide, got 5x8"):
        net(torch.zeros(1, 3, 40, 64))


def test_dense_needs_batch_of_one():
    net = resnet38_aff.Net(width=0.125).eval()
    with pytest.raises(ValueError, match="batch of 1"):
        net(torch.zeros(2, 3, 40, 72), to_dense=True)


def test_training_freezes_stem_and_groups_new_layers():
    net = resnet38_aff.Net(width=0.125).train()
    assert all(not m.training for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not any(p.requires_grad for p in net.b2_2.parameters())
    groups = net.get_parameter_groups()
    new = {id(m.weight) for m in (net.f8_3, net.f8_4, net.f8_5, net.f9)}
    assert {id(p) for p in groups[2]} == new
    assert groups[1] == [] and groups[3] == []  # no biases anywhere
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert len(groups[0]) + len(groups[2]) == len(trainable)


def test_gradient_reaches_features_but_not_frozen_stem():
    torch.manual_seed(0)
    net = resnet38_aff.Net(width=0.125).train()
    aff = net(torch.randn(1, 3, 40, 72))
    (-torch.log(aff + 1e-5)).mean().backward()
    assert net.f9.weight.grad is not None and net.f9.weight.grad.abs().sum() > 0
    assert sum(float(p.grad.abs().sum()) for p in net.b3.parameters() if p.grad is not None) > 0
    assert net.conv1a.weight.grad is None
    assert np.isfinite(aff.detach().numpy()).all()
