"""The demo's pretrained backbone: the shipped file is the one its record describes
(checksum), loads into every network the demo starts from it, and the pretraining set's
classes are not the demo's; the pretraining script writes such a file and record."""
import json
import os

import numpy as np
import pytest
import torch

from data import make_demo_dataset as demo
from data import pretraining as pt
from data.pretrain_backbone import main as pretrain_main
from network import AuxSegNet, deeplab_largefov, resnet38_aff, resnet38_cls
from tool.core.checkpoint import load_weights, read_checkpoint, save_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(REPO, "data", "resnet38_demo_pretrained.pth")
RECORD = os.path.splitext(WEIGHTS)[0] + ".json"
WIDTH = 0.125


@pytest.fixture(scope="module")
def record():
    with open(RECORD) as f:
        return json.load(f)


def test_shipped_weights_match_their_record(record):
    assert record["weights"] == os.path.basename(WEIGHTS)
    assert pt.sha256_of(WEIGHTS) == record["sha256"]
    assert os.path.getsize(WEIGHTS) < 8 * 2 ** 20  # a few MB
    assert record["command"].startswith("python data/pretrain_backbone.py")
    settings = record["settings"]
    assert settings["width"] == WIDTH and "seed" in settings and settings["epochs"] >= 1
    assert record["val_top1"] > 5 * 100 / record["classes"]  # far above chance


def test_shipped_weights_are_a_float16_trunk_that_loads_as_float32():
    state = read_checkpoint(WEIGHTS)
    assert state["conv1a.weight"].shape[0] == round(64 * WIDTH)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    net = resnet38_cls.Net(width=WIDTH)
    missing, unexpected = load_weights(net, WEIGHTS, allow_missing=("fc8",))
    assert [k for k in missing if not k.startswith("fc8")] == [] and unexpected == []
    assert net.b4_3.conv_branch2a.weight.dtype == torch.float32
    torch.testing.assert_close(net.bn7.running_var, state["bn7.running_var"].float())
    assert float(net.bn7.running_var.std()) > 0  # trained statistics, not the identity


@pytest.mark.parametrize("make", [lambda: resnet38_aff.Net(width=WIDTH),
                                  lambda: deeplab_largefov.Net(width=WIDTH),
                                  lambda: AuxSegNet.SegNet(width=WIDTH)])
def test_every_demo_network_takes_the_trunk(make):
    net = make()
    missing, unexpected = load_weights(net, WEIGHTS, strict=False)
    trunk = set(read_checkpoint(WEIGHTS))
    assert not unexpected and not [k for k in missing if k in trunk]
    with torch.no_grad():
        features = net.eval().forward_as_dict(torch.zeros(1, 3, 64, 64)) \
            if hasattr(net, "forward_as_dict") else None
    assert features is None or torch.isfinite(features["conv6"]).all()


def test_pretraining_classes_are_not_the_demo_classes():
    classes = pt.pretrain_classes(100, seed=0)
    assert len(classes) == 100
    heads = [(c.head_shape, c.head.texture, c.head.hue % 360) for c in classes]
    assert len(set(heads)) == 100
    assert not set(heads) & pt.demo_heads()
    assert len(pt.demo_heads()) == len(demo.DEMO_CLASSES)


def test_pretraining_images_are_deterministic_and_labelled_by_class():
    classes = pt.pretrain_classes(4, seed=0)
    items = pt.set_items(classes, 2, 48, 0, "train")
    assert [i[1] for i in items] == [0, 1, 2, 3, 0, 1, 2, 3]
    first = [pt.render_item(i)[1] for i in items]
    again = [pt.render_item(i)[1] for i in items]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert first[0].shape == (48, 48, 3) and first[0].dtype == np.uint8
    val = pt.set_items(classes, 2, 48, 0, "val")
    assert not np.array_equal(pt.render_item(val[0])[1], first[0])


def test_pretraining_script_writes_weights_and_their_record(tmp_path):
    out = tmp_path / "tiny.pth"
    pretrain_main(["--out", str(out), "--num_classes", "3", "--per_class", "8",
                   "--val_per_class", "2", "--size", "48", "--epochs", "1", "--batch_size", "8",
                   "--warmup_steps", "1", "--threads", "1", "--workers", "1"])
    with open(tmp_path / "tiny.json") as f:
        rec = json.load(f)
    assert rec["sha256"] == pt.sha256_of(out) and rec["train_images"] == 24
    assert "--num_classes 3" in rec["command"] and rec["settings"]["num_classes"] == 3
    net = resnet38_cls.Net(width=WIDTH)
    load_weights(net, str(out), allow_missing=("fc8",))


def test_saved_weights_depend_on_the_tensors_only(tmp_path):
    state = {"w": torch.arange(6, dtype=torch.float16).view(2, 3)}
    save_checkpoint(tmp_path / "a.pth", state)
    save_checkpoint(tmp_path / "b.pth", state)
    assert pt.sha256_of(tmp_path / "a.pth") == pt.sha256_of(tmp_path / "b.pth")
