"""AuxSegNet stage scripts end to end on a tiny synthetic dataset (CPU, width 0.125):
train_AuxAff -> gen_pgt -> infer_AuxAff, resume, a world-size-1 DDP run, bad input."""
import json
import socket

import numpy as np
import pytest
import torch
from PIL import Image

import gen_pgt
import infer_AuxAff
import run_iterations
import train_AuxAff
from data.make_demo_dataset import make_demo_dataset
from network import resnet38_cls
from tool.core.checkpoint import read_checkpoint, save_checkpoint
from tool.core.io import InputError, save_gray_png

WIDTH = "0.125"


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    make_demo_dataset(root, num_train=4, num_val=1, min_size=72, max_size=80)
    return root


def train_args(voc, out, *extra):
    return ["--img_path", str(voc / "JPEGImages"), "--list_path", str(voc / "train.txt"),
            "--seg_pgt_path", str(voc / "SegmentationClassAug"),
            "--sal_pgt_path", str(voc / "SAL"), "--cls_labels", str(voc / "cls_labels.npy"),
            "--save_path", str(out), "--width", WIDTH, "--batch_size", "2",
            "--crop_size", "64", "--num_epochs", "2", "--device", "cpu",
            "--print_intervals", "1", "--num_workers", "0", *extra]


def weights_equal(a, b, atol=0.0):
    sa, sb = read_checkpoint(a), read_checkpoint(b)
    assert list(sa) == list(sb)
    return all(torch.allclose(sa[k].float(), sb[k].float(), atol=atol, rtol=0) for k in sa)


@pytest.fixture(scope="module")
def trained(voc, tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    final = train_AuxAff.main(train_args(voc, out, "--max_iters", "2", "--num_workers", "1"))
    return out, final


def test_training_writes_weights_log_and_state(trained):
    out, final = trained
    log = json.loads((out / "AuxSegNet_log.json").read_text())
    assert [r["iter"] for r in log] == [1, 2]
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in log)
    terms = ("cls", "init_sal", "refined_sal", "init_seg", "refined_seg")
    assert abs(sum(log[-1][t] for t in terms) - log[-1]["loss"]) < 1e-3
    assert log[0]["lr"] == pytest.approx(7e-4)  # PolyOptimizer_cls: base lr at step 0
    assert (out / "AuxSegNet_state.pth").is_file()
    state = read_checkpoint(final)
    assert state["seg_conv4.weight"].shape == (21, 16, 1, 1)


def test_training_runs_max_step_plus_one_iterations_as_released(voc, tmp_path):
    """4 images, batch 2, one epoch: max_step 2, then the released loop's extra iteration
    at the lr frozen at max_step."""
    train_AuxAff.main(train_args(voc, tmp_path, "--num_epochs", "1"))
    log = json.loads((tmp_path / "AuxSegNet_log.json").read_text())
    assert [r["iter"] for r in log] == [1, 2, 3]
    assert [r["max_step"] for r in log] == [2, 2, 2]
    assert log[0]["lr"] > log[1]["lr"] == log[2]["lr"]
    assert torch.load(tmp_path / "AuxSegNet_state.pth", weights_only=True)["step"] == 3


def test_resume_continues_exactly(voc, tmp_path, trained):
    _, straight = trained  # 2 iterations in one go (one DataLoader worker)
    first = train_AuxAff.main(train_args(voc, tmp_path, "--max_iters", "1"))
    assert not weights_equal(first, straight)
    resumed = train_AuxAff.main(train_args(voc, tmp_path, "--max_iters", "2", "--resume"))
    assert weights_equal(resumed, straight)
    log = json.loads((tmp_path / "AuxSegNet_log.json").read_text())
    assert [r["iter"] for r in log] == [1, 2]


def test_world_size_one_ddp_matches_plain_run(voc, tmp_path, trained, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                           MASTER_PORT=str(port)).items():
        monkeypatch.setenv(key, value)
    final = train_AuxAff.main(train_args(voc, tmp_path, "--max_iters", "2"))
    assert not torch.distributed.is_initialized()  # cleaned up
    assert weights_equal(final, trained[1], atol=1e-6)


def test_gen_pgt_then_infer(voc, tmp_path, trained):
    _, weights = trained
    seg_dir, sal_dir, pred_dir = tmp_path / "seg", tmp_path / "sal", tmp_path / "pred"
    common = ["--weights", str(weights), "--img_path", str(voc / "JPEGImages"),
              "--list_path", str(voc / "train.txt"), "--device", "cpu",
              "--network", "AuxSegNet", "--gpu_id", "0"]  # released flags; CPU run
    assert gen_pgt.main(common + ["--SALpath", str(voc / "SAL"), "--seg_pgt_path", str(seg_dir),
                                  "--sal_pgt_path", str(sal_dir),
                                  "--cls_labels", str(voc / "cls_labels.npy"),
                                  "--workers", "2"]) == 4
    labels = np.load(voc / "cls_labels.npy", allow_pickle=True).item()
    for img_id in (voc / "train.txt").read_text().split():
        size = Image.open(voc / "JPEGImages" / f"{img_id}.jpg").size
        seg, sal = Image.open(seg_dir / f"{img_id}.png"), Image.open(sal_dir / f"{img_id}.png")
        assert seg.mode == "P" and sal.mode == "L" and seg.size == sal.size == size
        classes = set(np.unique(seg)) - {0, 255}
        assert classes <= {c + 1 for c in np.flatnonzero(labels[img_id])}
    assert infer_AuxAff.main(common + ["--save_path", str(pred_dir), "--use_crf",
                                       "--scales", "1.0", "0.5", "--flip", "--shard", "1/2"]) == 2
    assert sorted(p.name for p in pred_dir.glob("*.png")) == ["2026_000002.png", "2026_000004.png"]
    pred = Image.open(pred_dir / "2026_000002.png")
    assert pred.mode == "P" and pred.size == Image.open(voc / "JPEGImages/2026_000002.jpg").size
    settings = json.loads((pred_dir / "settings.json").read_text())
    assert settings["scales"] == [1.0, 0.5] and settings["flip"] and settings["crf"] == "inf"


def test_released_use_crf_form_parses():
    args = infer_AuxAff.build_parser().parse_args(
        ["--img_path", "i", "--weights", "w", "--save_path", "s", "--use_crf", "False"])
    assert args.use_crf is False and args.scales == [1.0] and not args.flip


@pytest.mark.parametrize("script, argv", [
    (train_AuxAff, ["--img_path", "i", "--seg_pgt_path", "s", "--sal_pgt_path", "p",
                    "--init_weights", "w", "--save_path", "o"]),
    (gen_pgt, ["--weights", "w", "--img_path", "i", "--SALpath", "s", "--seg_pgt_path", "g",
               "--sal_pgt_path", "p"]),
    (infer_AuxAff, ["--img_path", "i", "--weights", "w", "--save_path", "s"])])
def test_released_network_and_gpu_id_flags_parse(script, argv, capsys):
    args = script.build_parser().parse_args(argv + ["--network", "AuxSegNet", "--gpu_id", "1"])
    assert args.network == "AuxSegNet" and args.gpu_id == 1
    assert getattr(args, "amp", False) is False  # fp32 unless --amp, as released
    for bad in (["--network", "resnet38_cls"], ["--gpu_id", "-1"]):
        with pytest.raises(SystemExit):
            script.build_parser().parse_args(argv + bad)
    assert "--network" in capsys.readouterr().err


def test_missing_pseudo_label_is_reported_before_training(voc, tmp_path):
    labels = tmp_path / "seg"
    labels.mkdir()
    with pytest.raises(InputError, match=r"seg/2026_000001.png: missing label PNG"):
        train_AuxAff.main(train_args(voc, tmp_path / "out", "--seg_pgt_path", str(labels)))


def test_wrong_size_saliency_is_one_line_from_a_worker(voc, tmp_path):
    sal = tmp_path / "sal"
    for img_id in (voc / "train.txt").read_text().split():
        save_gray_png(sal / f"{img_id}.png", np.zeros((10, 12), np.uint8))
    with pytest.raises(InputError) as err:
        train_AuxAff.main(train_args(voc, tmp_path / "out", "--sal_pgt_path", str(sal),
                                     "--max_iters", "1", "--num_workers", "1"))
    message = str(err.value)
    assert "\n" not in message and "saliency map has size 10x12" in message


def test_gen_pgt_reports_missing_saliency(voc, tmp_path, trained):
    empty = tmp_path / "no_sal"
    empty.mkdir()
    with pytest.raises(InputError, match=r"no_sal/2026_000001.png: missing label PNG"):
        gen_pgt.main(["--weights", str(trained[1]), "--img_path", str(voc / "JPEGImages"),
                      "--list_path", str(voc / "train.txt"), "--SALpath", str(empty),
                      "--seg_pgt_path", str(tmp_path / "a"), "--sal_pgt_path", str(tmp_path / "b"),
                      "--cls_labels", str(voc / "cls_labels.npy"), "--device", "cpu"])


def test_run_iterations_chains_rounds_and_restarts(voc, tmp_path, capsys):
    init = tmp_path / "cls.pth"
    save_checkpoint(init, resnet38_cls.Net(width=float(WIDTH)))
    work = tmp_path / "iter"
    argv = ["--rounds", "2", "--work_dir", str(work), "--img_path", str(voc / "JPEGImages"),
            "--SALpath", str(voc / "SAL"), "--seg_pgt_path", str(voc / "SegmentationClassAug"),
            "--sal_pgt_path", str(voc / "SAL"), "--init_weights", str(init),
            "--list_path", str(voc / "train.txt"), "--cls_labels", str(voc / "cls_labels.npy"),
            "--width", WIDTH, "--device", "cpu", "--gt_dir", str(voc / "SegmentationClass"),
            "--train_args", "--crop_size 64 --batch_size 2 --max_iters 1 --num_workers 0"]
    records = run_iterations.main(argv)
    out = capsys.readouterr().out
    round1 = work / "round_1" / "model" / "AuxSegNet_final.pth"
    assert f"{init}: loaded" in out and f"{round1}: loaded" in out  # round 2 starts from round 1
    assert [r["round"] for r in records] == [1, 2]
    assert all(0 <= r["scores"]["miou"] <= 100 for r in records)
    assert len(list((work / "round_2" / "seg_pgt").glob("*.png"))) == 4
    table = out.strip().splitlines()[-3:]
    assert table[0].startswith("    0") and table[2].startswith("    2")
    # a rerun redoes nothing; with round 2's outputs gone it redoes round 2 only
    stamp = round1.stat().st_mtime_ns
    assert run_iterations.main(argv) == records
    round2 = work / "round_2"
    for path in (round2 / "done.json", round2 / "model" / "AuxSegNet_final.pth"):
        path.unlink()
    assert run_iterations.main(argv)[1]["weights"] == records[1]["weights"]
    assert round1.stat().st_mtime_ns == stamp
    assert (round2 / "model" / "AuxSegNet_final.pth").is_file()
