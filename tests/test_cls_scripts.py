"""train_cls.py → infer_cls.py on a tiny demo dataset: outputs, resume, bad input."""
import os

import numpy as np
import pytest
import torch

import infer_cls
import train_cls
from network import resnet38_aff
from tool.core.checkpoint import save_checkpoint
from tool.core.io import InputError, load_cam_dict, read_label_png
from tool.data.voc import load_cls_labels

TRAIN_ARGS = ["--width", "0.125", "--crop_size", "64", "--resize_long", "64", "96",
              "--batch_size", "4", "--num_workers", "0", "--max_epoches", "2"]


@pytest.fixture(scope="module")
def trained(tiny_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("cls")
    train_cls.main(["--train_list", str(tiny_demo / "train.txt"), "--voc12_root", str(tiny_demo),
                    "--save_dir", str(out), "--max_iters", "2"] + TRAIN_ARGS)
    return out


def test_training_writes_weights_and_resumable_state(trained, tiny_demo):
    state = torch.load(trained / "resnet38_cls_state.pth", weights_only=True)
    assert state["step"] == 2 and state["epoch"] == 1
    before = torch.load(trained / "resnet38_cls.pth", weights_only=True)["fc8.weight"].clone()
    train_cls.main(["--train_list", str(tiny_demo / "train.txt"), "--voc12_root", str(tiny_demo),
                    "--save_dir", str(trained), "--resume"] + TRAIN_ARGS)
    state = torch.load(trained / "resnet38_cls_state.pth", weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 4  # one more epoch of 2 steps, not a restart
    after = torch.load(trained / "resnet38_cls.pth", weights_only=True)["fc8.weight"]
    assert not torch.equal(before, after)


def test_infer_cls_writes_every_output(trained, tiny_demo, tmp_path):
    outs = {k: tmp_path / k for k in ("cam", "pred", "la", "ha", "heat")}
    argv = ["--infer_list", str(tiny_demo / "val.txt"), "--voc12_root", str(tiny_demo),
            "--weights", str(trained / "resnet38_cls.pth"), "--width", "0.125",
            "--out_cam", str(outs["cam"]), "--out_cam_pred", str(outs["pred"]),
            "--out_la_crf", str(outs["la"]), "--out_ha_crf", str(outs["ha"]),
            "--out_heatmap", str(outs["heat"]), "--scales", "1.0", "0.5"]
    infer_cls.main(argv)
    labels = load_cls_labels(tiny_demo / "cls_labels.npy")
    ids = (tiny_demo / "val.txt").read_text().split()
    for img_id in ids:
        cams = load_cam_dict(outs["cam"] / f"{img_id}.npy", labels[img_id])
        assert set(cams) == set(np.nonzero(labels[img_id])[0].tolist())
        la = np.load(outs["la"] / f"{img_id}.npy", allow_pickle=True).item()
        assert sorted(la) == [0] + [c + 1 for c in sorted(cams)]
        pred = read_label_png(outs["pred"] / f"{img_id}.png")
        assert pred.shape == next(iter(cams.values())).shape
        assert (outs["heat"] / f"{img_id}.png").is_file()
    # a second run skips everything; no temporary files are left behind
    stamp = os.path.getmtime(outs["cam"] / f"{ids[0]}.npy")
    infer_cls.main(argv)
    assert os.path.getmtime(outs["cam"] / f"{ids[0]}.npy") == stamp
    assert not [f for d in outs.values() for f in os.listdir(d) if ".tmp" in f]


def test_infer_cls_rejects_missing_image(trained, tiny_demo, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("2026_999999\n")
    labels = load_cls_labels(tiny_demo / "cls_labels.npy")
    labels["2026_999999"] = np.eye(20, dtype=np.float32)[0]
    np.save(tmp_path / "cls_labels.npy", labels)
    with pytest.raises(InputError, match="2026_999999.jpg: missing image"):
        infer_cls.main(["--infer_list", str(listing), "--voc12_root", str(tiny_demo),
                        "--cls_labels", str(tmp_path / "cls_labels.npy"),
                        "--weights", str(trained / "resnet38_cls.pth"), "--width", "0.125",
                        "--out_cam", str(tmp_path / "cam")])


def test_infer_cls_rejects_checkpoint_of_another_network(tiny_demo, tmp_path):
    aff = tmp_path / "aff.pth"
    save_checkpoint(aff, resnet38_aff.Net(width=0.125))
    with pytest.raises(InputError, match="aff.pth: checkpoint looks like AffinityNet"):
        infer_cls.main(["--infer_list", str(tiny_demo / "val.txt"), "--voc12_root", str(tiny_demo),
                        "--weights", str(aff), "--width", "0.125", "--out_cam", str(tmp_path / "c")])
