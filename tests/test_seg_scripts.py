"""train_seg.py / infer_seg.py / tool.seg.infer: training lowers the loss, multi-scale
+ flip inference is a proper average, and the scripts run end to end on a tiny
synthetic VOC-layout dataset (train, resume, infer with and without MS+flip+CRF)."""
import argparse
import json

import numpy as np
import pytest
import torch

import infer_seg
import train_seg
from data.make_demo_dataset import make_demo_dataset
from network import resnet38_cls
from network.seg_models import build_model
from tool.core import checkpoint
from tool.core.io import SETTINGS_FILE, InputError, read_label_png, save_label_png
from tool.core.optim import psa_optimizer
from tool.core.train_step import sgd_step
from tool.seg import training
from tool.seg.infer import predict_label, predict_probs

SMALL = 0.125
COLOURS = torch.tensor([[-1.0, 0.0, 1.0], [1.5, -1.0, 0.0], [0.0, 1.5, -1.5]])


def toy_batch(size=32):
    """Two normalised images whose pixels are coloured by their class (3 classes), plus a
    band of ignored label pixels."""
    label = torch.zeros(2, size, size, dtype=torch.long)
    label[:, size // 4:3 * size // 4, size // 8:5 * size // 8] = 1
    label[1, size // 2:, size // 2:] = 2
    image = COLOURS[label].permute(0, 3, 1, 2) + 0.2 * torch.randn(2, 3, size, size)
    label[:, :3] = 255
    return image, label


@pytest.mark.parametrize("model", ["largefov", "deeplabv2"])
def test_a_few_training_steps_lower_the_loss(model):
    torch.manual_seed(0)
    net = build_model(model, num_classes=3, width=SMALL)
    args = argparse.Namespace(lr=0.01, wt_dec=5e-4, max_iters=4, momentum=0.9)
    optimizer = psa_optimizer(net, args.lr, args.wt_dec, args.max_iters, args.momentum)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    images, labels = toy_batch()

    def eval_loss():
        net.eval()
        with torch.no_grad():
            loss = training.seg_loss(net(images), labels).item()
        net.train()
        return loss

    before = eval_loss()
    for _ in range(args.max_iters):
        sgd_step(net, optimizer, images, labels, training.seg_loss_terms, scaler)
    assert eval_loss() < before - 0.1


def test_seg_loss_ignores_255():
    logits = torch.randn(1, 3, 4, 4)
    target = torch.full((1, 8, 8), 255, dtype=torch.long)
    target[0, :4] = 1
    other = target.clone()
    other[0, 4:] = 255  # unchanged: still ignored
    assert torch.isfinite(training.seg_loss(logits, target))
    torch.testing.assert_close(training.seg_loss(logits, target),
                               training.seg_loss(logits, other))


class MirrorBiased(torch.nn.Module):
    """Stride-8 logits that depend on the column: a net that is not flip-invariant."""

    def forward(self, x):
        pooled = torch.nn.functional.avg_pool2d(x, 8, ceil_mode=True)
        ramp = torch.linspace(0, 2, pooled.shape[-1]).view(1, 1, 1, -1)
        return torch.cat([pooled[:, :2] + ramp, pooled[:, 2:] - ramp], dim=1)


def test_predict_probs_is_a_flip_symmetric_average():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    net = MirrorBiased()
    probs = predict_probs(net, rgb, scales=(0.75, 1.0, 1.25), flip=True)
    assert probs.shape == (3, 37, 53) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    mirrored = predict_probs(net, rgb[:, ::-1], scales=(0.75, 1.0, 1.25), flip=True)
    np.testing.assert_allclose(mirrored[:, :, ::-1], probs, atol=1e-5)
    plain = predict_probs(net, rgb, scales=(1.0,), flip=False)
    assert np.abs(plain - plain[:, :, ::-1]).max() > 1e-2  # the net itself is not symmetric


def test_predict_label_with_crf_keeps_the_shape():
    rgb = np.random.default_rng(1).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    for kind in (None, "inf", "psa"):
        pred = predict_label(MirrorBiased(), rgb, crf_kind=kind)
        assert pred.shape == (30, 41) and pred.max() < 3


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg_demo")
    make_demo_dataset(root / "voc", seed=0, num_train=4, num_val=2, min_size=72, max_size=80)
    return root


def train_args(demo, *extra):
    return ["--model", "largefov", "--width", str(SMALL), "--train_list",
            str(demo / "voc" / "train.txt"), "--voc12_root", str(demo / "voc"),
            "--label_dir", str(demo / "voc" / "SegmentationClass"), "--crop_size", "48",
            "--batch_size", "2", "--num_workers", "0", "--save_every", "1",
            "--save_path", str(demo / "seg.pth"), "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def trained(demo):
    train_seg.main(train_args(demo, "--max_iters", "2"))
    return demo / "seg.pth"


def test_train_writes_weights_and_resumes(demo, trained):
    state = torch.load(str(trained) + train_seg.STATE_SUFFIX, weights_only=True)
    assert state["step"] == 1
    train_seg.main(train_args(demo, "--max_iters", "3", "--resume",
                              str(trained) + train_seg.STATE_SUFFIX))
    state = torch.load(str(trained) + train_seg.STATE_SUFFIX, weights_only=True)
    assert state["step"] == 2 and state["optimizer"]["global_step"] == 2
    net = build_model("largefov", 21, SMALL)
    checkpoint.load_weights(net, trained)  # strict: the saved weights fit the network


@pytest.mark.parametrize("extra, scales, flip, crf", [
    ([], [1.0], False, "none"),
    (["--scales", "0.75", "1.25", "--flip", "--use_crf"], [0.75, 1.25], True, "inf")])
def test_infer_writes_palette_pngs_and_settings(demo, trained, extra, scales, flip, crf):
    out = demo / f"pred_{len(extra)}"
    infer_seg.main(["--model", "largefov", "--width", str(SMALL), "--weights", str(trained),
                    "--infer_list", str(demo / "voc" / "val.txt"), "--voc12_root",
                    str(demo / "voc"), "--save_path", str(out), "--out_overlay",
                    str(out / "overlay"), "--device", "cpu", *extra])
    settings = json.loads((out / SETTINGS_FILE).read_text())
    assert settings["scales"] == scales and settings["flip"] is flip
    assert settings["crf"] == crf and settings["model"] == "largefov"
    for img_id in ("2026_000005", "2026_000006"):
        gt = read_label_png(demo / "voc" / "SegmentationClass" / f"{img_id}.png")
        pred = read_label_png(out / f"{img_id}.png", shape=gt.shape)
        assert pred.max() < 21
        assert (out / "overlay" / f"{img_id}.jpg").is_file()


def test_bad_label_value_names_the_file(demo, tmp_path):
    labels = tmp_path / "labels"
    for img_id in ("2026_000001", "2026_000002", "2026_000003", "2026_000004"):
        gt = read_label_png(demo / "voc" / "SegmentationClass" / f"{img_id}.png")
        save_label_png(labels / f"{img_id}.png", np.where(gt == 0, 30, gt))
    args = train_args(demo, "--max_iters", "1")
    args[args.index("--label_dir") + 1] = str(labels)
    with pytest.raises(InputError, match=r"labels/2026_00000\d\.png: label value 30"):
        train_seg.main(args)


def test_init_weights_from_the_classifier_fill_the_trunk(tmp_path):
    cls = resnet38_cls.Net(width=SMALL)
    for p in cls.parameters():
        torch.nn.init.normal_(p)
    path = tmp_path / "res38_cls.pth"
    checkpoint.save_checkpoint(path, cls)
    net = build_model("largefov", 21, SMALL)
    head_before = net.fc8_seg_conv2.weight.clone()
    training.load_init_weights(net, path)
    torch.testing.assert_close(net.b4_3.conv_branch2a.weight, cls.b4_3.conv_branch2a.weight)
    torch.testing.assert_close(net.fc8_seg_conv2.weight, head_before)


def test_init_weights_of_another_network_are_refused(demo, tmp_path):
    path = tmp_path / "other.pth"
    checkpoint.save_checkpoint(path, build_model("deeplabv2", 21, SMALL))
    with pytest.raises(InputError, match="other.pth"):
        train_seg.main(train_args(demo, "--max_iters", "1", "--init_weights", str(path)))


def test_init_weights_missing_backbone_blocks_are_refused(tmp_path):
    net = build_model("largefov", 21, SMALL)
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("b7.")}
    path = tmp_path / "partial.pth"
    checkpoint.save_checkpoint(path, state)
    with pytest.raises(InputError, match=r"partial.pth: backbone weights missing .*b7\.\*"):
        training.load_init_weights(build_model("largefov", 21, SMALL), path)
