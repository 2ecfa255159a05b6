"""AffinityNet training labels and loss, and train_aff.py → infer_aff.py on a tiny demo
dataset with synthetic CAM and CRF dicts: outputs, resume, skipping, bad input."""
import json
import os

import numpy as np
import pytest
import torch

import infer_aff
import train_aff
from network import resnet38_aff
from network.pairs import search_directions
from tool.core.checkpoint import save_checkpoint
from tool.core.io import InputError, read_label_png, save_npy
from tool.data.voc import load_cls_labels, read_image_list
from tool.psa import aff_labels as al
from tool.psa.random_walk import cpu_threads

WIDTH = ["--width", "0.125"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tiny networks spend most of their time on thread hand-offs on shared cores."""
    with cpu_threads(1):
        yield


def test_crf_label_rules():
    keys = np.array([0, 3, 8])  # background, class 2, class 7
    la = np.zeros((2, 4, 3), np.float32)
    ha = np.zeros((2, 4, 3), np.float32)
    la[0, 0] = [0.9, 0.1, 0.0]  # la background, ha background -> 0
    ha[0, 0] = [0.8, 0.2, 0.0]
    la[0, 1] = [0.9, 0.1, 0.0]  # la background, ha class -> 255 (unsure)
    ha[0, 1] = [0.1, 0.9, 0.0]
    la[0, 2] = [0.1, 0.2, 0.7]  # la class 7, ha class -> 8
    ha[0, 2] = [0.0, 0.1, 0.9]
    la[0, 3] = [0.1, 0.6, 0.3]  # la class 2 but ha background -> 0
    ha[0, 3] = [0.6, 0.3, 0.1]
    # row 1 has no score at all (crop padding) -> 255
    label = al.crf_label(np.concatenate([la, ha], axis=-1), keys, stride=1)
    assert label.tolist() == [[0, 255, 8, 0], [255, 255, 255, 255]]


def test_block_mean_pools_with_zero_padding():
    scores = np.ones((10, 17, 2), np.float32)
    pooled = al.block_mean(scores, 8)
    assert pooled.shape == (2, 3, 2)
    assert pooled[0, 0, 0] == 1 and np.isclose(pooled[1, 2, 0], 2 * 1 / 64)


def test_pair_labels_by_hand():
    label = np.zeros((5, 9), np.uint8)  # one "from" pixel at (0, 4)
    label[0, 4] = 3
    label[0, 5] = 3  # direction (0, 1): same foreground class
    label[0, 6] = 255  # direction (0, 2): ignored
    label[1, 4] = 7  # direction (1, 0): other class
    dirs = search_directions(5)
    bg, fg, neg = al.affinity_pair_labels(label)[:, :, 0]
    assert fg[dirs.index((0, 1))] == 1 and fg.sum() == 1
    assert neg[dirs.index((1, 0))] == 1
    assert neg.sum() == 32  # every other valid partner is background
    assert bg.sum() == 0 and fg[dirs.index((0, 2))] == 0 and neg[dirs.index((0, 2))] == 0


def test_background_pairs_and_ignore():
    label = np.zeros((5, 9), np.uint8)
    label[2, 4] = 255
    bg, fg, neg = al.affinity_pair_labels(label)[:, :, 0]
    assert bg.sum() == 33 and fg.sum() == 0 and neg.sum() == 0


def test_loss_weights_and_means():
    aff = torch.tensor([[[0.5, 0.9, 0.2, 0.7]]])
    labels = torch.tensor([[[[1., 0, 0, 0]], [[0, 1., 0, 0]], [[0, 0, 1., 1.]]]])
    loss, parts = al.affinity_loss(aff, labels)
    bg = -np.log(0.5 + 1e-5)
    fg = -np.log(0.9 + 1e-5)
    neg = -(np.log(0.8 + 1e-5) + np.log(0.3 + 1e-5)) / 2
    assert np.isclose(parts["bg"].item(), bg / (1 + 1e-5), rtol=1e-5)
    assert np.isclose(parts["neg"].item(), 2 * neg / (2 + 1e-5), rtol=1e-5)
    assert np.isclose(loss.item(), (bg + fg) / 4 + neg / 2, rtol=1e-4)


def test_joint_augment_keeps_image_and_scores_aligned():
    rgb = np.zeros((100, 130, 3), np.uint8)
    rgb[:, :60] = (220, 20, 20)  # red left part: class score channel 1
    rgb[:, 60:] = (20, 20, 220)
    scores = np.zeros((100, 130, 2), np.float32)
    scores[:, :60, 1] = 1
    scores[:, 60:, 0] = 1
    for seed in range(6):
        image, crop = al.joint_augment(rgb, scores, 112, np.random.default_rng(seed))
        assert image.shape == (3, 112, 112) and crop.shape == (112, 112, 2)
        red = image[0] > image[2] + 1
        blue = image[2] > image[0] + 1
        assert np.all(crop[red, 1] == 1) and np.all(crop[blue, 0] == 1)
        padding = crop.max(axis=-1) == 0
        assert padding.sum() == 12 * 112  # height 100 padded to 112
        assert np.allclose(image[:, padding], image[:, padding][:, :1])  # black, normalised


@pytest.fixture(scope="module")
def aff_inputs(tiny_demo, tmp_path_factory):
    """CAM dicts and la/ha score dicts made from the demo's ground truth (a stand-in for
    infer_cls.py), and random initial weights."""
    out = tmp_path_factory.mktemp("aff")
    labels = load_cls_labels(tiny_demo / "cls_labels.npy")
    ids = read_image_list(tiny_demo / "train.txt") + read_image_list(tiny_demo / "val.txt")
    for img_id in ids:
        seg = read_label_png(tiny_demo / "SegmentationClass" / f"{img_id}.png")
        classes = np.nonzero(labels[img_id])[0]
        cams = {int(c): (seg == c + 1).astype(np.float32) * 0.9 for c in classes}
        save_npy(out / "cam" / f"{img_id}.npy", cams)
        top = np.max(np.stack(list(cams.values())), axis=0)
        for kind, alpha in (("la", 4), ("ha", 32)):
            crf = {0: (1 - top) ** alpha, **{c + 1: cam for c, cam in cams.items()}}
            save_npy(out / kind / f"{img_id}.npy", crf)
    torch.manual_seed(0)
    save_checkpoint(out / "init.pth", resnet38_aff.Net(width=0.125))
    return out


def train_argv(tiny_demo, inputs, save_dir, *extra):
    return ["--train_list", str(tiny_demo / "train.txt"), "--voc12_root", str(tiny_demo),
            "--la_crf_dir", str(inputs / "la"), "--ha_crf_dir", str(inputs / "ha"),
            "--weights", str(inputs / "init.pth"), "--save_dir", str(save_dir),
            "--crop_size", "96", "--batch_size", "2", "--num_workers", "0",
            "--max_epoches", "2", "--max_iters", "1", *WIDTH, *extra]


def test_dataset_item_shapes(tiny_demo, aff_inputs):
    ids = read_image_list(tiny_demo / "train.txt")
    data = al.AffinityDataset(ids, tiny_demo / "JPEGImages", aff_inputs / "la",
                              aff_inputs / "ha", crop_size=96)
    image, labels = data[0]
    assert image.shape == (3, 96, 96) and labels.shape == (3, 34, 8 * 4)
    assert torch.all(labels.sum(dim=0) <= 1)  # the three kinds are exclusive
    assert labels[0].sum() > 0  # demo images have background pairs


def test_train_aff_one_step_and_resume(tiny_demo, aff_inputs, tmp_path):
    train_aff.main(train_argv(tiny_demo, aff_inputs, tmp_path))
    init = torch.load(aff_inputs / "init.pth", weights_only=True)
    trained = torch.load(tmp_path / "resnet38_aff.pth", weights_only=True)
    assert list(trained) == list(init)
    assert not torch.equal(trained["f9.weight"], init["f9.weight"])
    assert torch.equal(trained["conv1a.weight"], init["conv1a.weight"])  # frozen
    state = torch.load(tmp_path / "resnet38_aff_state.pth", weights_only=True)
    assert state["step"] == 1 and state["epoch"] == 1
    train_aff.main(train_argv(tiny_demo, aff_inputs, tmp_path, "--resume", "--max_iters", "2"))
    state = torch.load(tmp_path / "resnet38_aff_state.pth", weights_only=True)
    assert state["step"] == 2 and state["epoch"] == 2


def test_train_aff_rejects_missing_crf(tiny_demo, aff_inputs, tmp_path):
    argv = train_argv(tiny_demo, aff_inputs, tmp_path)
    argv[argv.index("--la_crf_dir") + 1] = str(tmp_path / "nowhere")
    with pytest.raises(InputError, match="la CRF score file not found"):
        train_aff.main(argv)


def infer_argv(tiny_demo, inputs, out, *extra):
    return ["--infer_list", str(tiny_demo / "val.txt"), "--voc12_root", str(tiny_demo),
            "--cam_dir", str(inputs / "cam"), "--weights", str(inputs / "init.pth"),
            "--out_rw", str(out), *WIDTH, *extra]


def test_infer_aff_writes_labels_and_skips_done(tiny_demo, aff_inputs, tmp_path):
    argv = infer_argv(tiny_demo, aff_inputs, tmp_path / "rw", "--out_overlay",
                      str(tmp_path / "overlay"), "--beta", "1", "--logt", "5")
    infer_aff.main(argv)
    labels = load_cls_labels(tiny_demo / "cls_labels.npy")
    ids = read_image_list(tiny_demo / "val.txt")
    for img_id in ids:
        rw_label = read_label_png(tmp_path / "rw" / f"{img_id}.png")
        seg = read_label_png(tiny_demo / "SegmentationClass" / f"{img_id}.png")
        assert rw_label.shape == seg.shape
        allowed = {0} | {int(c) + 1 for c in np.nonzero(labels[img_id])[0]}
        assert set(np.unique(rw_label).tolist()) <= allowed
        assert (tmp_path / "overlay" / f"{img_id}.png").is_file()
    settings = json.loads((tmp_path / "rw" / "settings.json").read_text())
    assert settings["stage"] == "infer_aff" and settings["logt"] == 5
    stamp = os.path.getmtime(tmp_path / "rw" / f"{ids[0]}.png")
    infer_aff.main(argv)
    assert os.path.getmtime(tmp_path / "rw" / f"{ids[0]}.png") == stamp
    (tmp_path / "one.txt").write_text(ids[0] + "\n")
    infer_aff.main(infer_argv(tiny_demo, aff_inputs, tmp_path / "dense", "--beta", "1",
                              "--logt", "5", "--method", "dense",
                              "--infer_list", str(tmp_path / "one.txt")))
    assert np.array_equal(read_label_png(tmp_path / "dense" / f"{ids[0]}.png"),
                          read_label_png(tmp_path / "rw" / f"{ids[0]}.png"))


def test_infer_aff_rejects_missing_cam(tiny_demo, aff_inputs, tmp_path):
    cams = tmp_path / "cams"
    cams.mkdir()
    first = read_image_list(tiny_demo / "val.txt")[0]
    with pytest.raises(InputError, match=f"{first}.npy: CAM file not found \\(and 2 more\\)"):
        infer_aff.main(infer_argv(tiny_demo, aff_inputs, tmp_path / "rw") +
                       ["--cam_dir", str(cams)])


def test_infer_aff_rejects_class_not_in_label(tiny_demo, aff_inputs, tmp_path):
    labels = load_cls_labels(tiny_demo / "cls_labels.npy")
    ids = read_image_list(tiny_demo / "val.txt")
    cams = tmp_path / "cams"
    for img_id in ids:
        absent = int(np.nonzero(labels[img_id] == 0)[0][0])
        save_npy(cams / f"{img_id}.npy", {absent: np.zeros((2, 2), np.float32)})
    with pytest.raises(InputError, match="not in the image label"):
        infer_aff.main(infer_argv(tiny_demo, aff_inputs, tmp_path / "rw") +
                       ["--cam_dir", str(cams)])
