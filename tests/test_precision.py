"""--precision: fp32 changes nothing, bf16 runs the forwards in bfloat16 and stays within
the stated tolerance of fp32 on the recipe networks (golden images); every trainer takes
a bf16 step close to its fp32 step (and refuses --amp with it, or a resume at the other
precision), and the AuxSegNet and segmentation stages run at bf16 close to fp32."""
import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

import gen_pgt
import infer_AuxAff
import infer_seg
import tool.auxsegnet.training
import tool.psa.training
import train_aff
import train_AuxAff
import train_cls
import train_seg
from golden import GOLDEN, load_golden, load_recipe, needs_golden
from network import resnet38_aff, resnet38_cls
from stage_inputs import WIDTH, make_stage_inputs, run_cli
from tool.cam import multiscale as camlib
from tool.core.io import SETTINGS_FILE
from tool.core.precision import PRECISIONS, add_precision_arg, precision_context
from tool.core.train_step import sgd_step
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


# ------------------------------------------------ trainers and the other inference stages

# The first step's loss terms, bf16 vs fp32, on the tiny networks below: bf16 rounds each
# convolution's inputs and weights to 8 significant bits (relative error up to 2^-9, 0.2 %);
# over ResNet-38's ~40 layers such errors add up to a few tenths of a percent (measured
# up to 0.3 %, train_aff's terms), 10x inside this tolerance.
BF16_LOSS_RTOL = 0.03


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_stage_inputs(tmp_path_factory.mktemp("precision") / "inputs")


TRAINERS = {
    # name: (main, module whose sgd_step the loop calls, argv(env, out), training state)
    "train_cls": (train_cls.main, tool.psa.training, lambda e, out: [
        "--train_list", e.train_list, "--voc12_root", e.voc, "--save_dir", out, "--width", WIDTH,
        "--crop_size", "64", "--resize_long", "64", "96", "--batch_size", "2",
        "--num_workers", "0", "--max_iters", "1", "--device", "cpu"], "resnet38_cls_state.pth"),
    "train_aff": (train_aff.main, tool.psa.training, lambda e, out: [
        "--train_list", e.train_list, "--voc12_root", e.voc, "--la_crf_dir", e.la,
        "--ha_crf_dir", e.ha, "--weights", e.weights["aff"], "--save_dir", out,
        "--crop_size", "72", "--batch_size", "2", "--num_workers", "0", "--max_iters", "1",
        "--width", WIDTH, "--device", "cpu"], "resnet38_aff_state.pth"),
    "train_AuxAff": (train_AuxAff.main, tool.auxsegnet.training, lambda e, out: [
        "--img_path", e.images, "--seg_pgt_path", e.voc / "SegmentationClassAug",
        "--sal_pgt_path", e.sal, "--list_path", e.train_list, "--cls_labels", e.cls_labels,
        "--init_weights", e.weights["cls"], "--save_path", out, "--width", WIDTH,
        "--batch_size", "2", "--crop_size", "64", "--max_iters", "1", "--num_workers", "0",
        "--device", "cpu"], "AuxSegNet_state.pth"),
    "train_seg": (train_seg.main, train_seg, lambda e, out: [
        "--model", "largefov", "--width", WIDTH, "--train_list", e.train_list,
        "--voc12_root", e.voc, "--label_dir", e.gt, "--crop_size", "48", "--batch_size", "2",
        "--num_workers", "0", "--max_iters", "2", "--save_every", "1",
        "--save_path", out / "seg.pth", "--device", "cpu"], "seg.pth.state"),
}


def conv_output_dtypes():
    """Starts recording the dtype of every Conv2d output; returns (the set, the handle)."""
    seen = set()

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            seen.add(output.dtype)
    return seen, torch.nn.modules.module.register_module_forward_hook(hook)


@pytest.fixture(scope="module")
def trained(env, tmp_path_factory):
    """Each trainer run at each precision: {(name, precision): (output folder, the first
    step's loss terms, the Conv2d output dtypes seen)}."""
    runs = {}
    for name, (main, module, argv, _) in TRAINERS.items():
        for precision in PRECISIONS:
            out = tmp_path_factory.mktemp(f"{name}_{precision}")
            steps = []
            real_step = module.sgd_step

            def recording_step(*args, **kwargs):
                steps.append(real_step(*args, **kwargs))
                return steps[-1]
            module.sgd_step = recording_step
            dtypes, hook = conv_output_dtypes()
            try:
                main([str(a) for a in argv(env, out)] + ["--precision", precision])
            finally:
                module.sgd_step = real_step
                hook.remove()
            runs[name, precision] = (out, steps[0], dtypes)
    return runs


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_trainer_bf16_step_runs_in_bfloat16_with_a_loss_close_to_fp32(name, trained):
    _, fp32_terms, fp32_dtypes = trained[name, "fp32"]
    _, bf16_terms, bf16_dtypes = trained[name, "bf16"]
    assert fp32_dtypes == {torch.float32}
    assert bf16_dtypes == {torch.bfloat16}  # the autocast reached every convolution
    assert list(bf16_terms) == list(fp32_terms)
    for term, value in bf16_terms.items():
        assert np.isfinite(value), term
        assert value == pytest.approx(fp32_terms[term], rel=BF16_LOSS_RTOL), term
    assert bf16_terms["loss"] != fp32_terms["loss"]  # bf16 did change the arithmetic


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_trainer_refuses_to_resume_at_another_precision(name, trained, env, capsys):
    main, _, argv, state = TRAINERS[name]
    out = trained[name, "fp32"][0]
    before = (out / state).read_bytes()
    code, lines = run_cli(main, argv(env, out) + ["--resume", "--precision", "bf16"], capsys)
    assert code == 2
    assert lines == [f"error: {out / state}: --resume: this training state was saved with "
                     "--precision fp32, this run has --precision bf16; resume with "
                     "--precision fp32 or start a new run"]
    assert (out / state).read_bytes() == before


@pytest.mark.parametrize("name", ["train_AuxAff", "train_seg"])
def test_amp_with_bf16_is_refused_in_one_line(name, env, tmp_path, capsys):
    main, _, argv, _ = TRAINERS[name]
    code, lines = run_cli(main, argv(env, tmp_path) + ["--amp", "--precision", "bf16"], capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].endswith(
        "error: --amp and --precision bf16 exclude each other (--amp: float16 AMP on CUDA; "
        "--precision bf16: bfloat16 autocast on CPU or CUDA); give one")
    assert not any(tmp_path.iterdir())


def test_sgd_step_refuses_amp_with_bf16():
    net = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="exclude each other"):
        sgd_step(net, optimizer, torch.ones(1, 2), None, lambda out, _: (out.sum(), {}),
                 amp=True, precision="bf16")


STAGES = {
    # name: (main, argv(env, out), the label folders it writes)
    "gen_pgt": (gen_pgt.main, lambda e, out: [
        "--weights", e.weights["aux"], "--img_path", e.images, "--SALpath", e.sal,
        "--seg_pgt_path", out / "seg", "--sal_pgt_path", out / "sal", "--list_path",
        e.train_list, "--cls_labels", e.cls_labels, "--device", "cpu"], ("seg", "sal")),
    "infer_AuxAff": (infer_AuxAff.main, lambda e, out: [
        "--img_path", e.images, "--weights", e.weights["aux"], "--list_path", e.train_list,
        "--device", "cpu", "--save_path", out / "pred", "--scales", "1.0", "0.75", "--flip"],
        ("pred",)),
    "infer_seg": (infer_seg.main, lambda e, out: [
        "--model", "largefov", "--weights", e.weights["seg"], "--width", WIDTH,
        "--infer_list", e.train_list, "--voc12_root", e.voc, "--device", "cpu",
        "--save_path", out / "pred"], ("pred",)),
}


def label_maps(folder):
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_runs_at_bf16_close_to_fp32_and_records_it(name, env, tmp_path, capsys):
    main, argv, folders = STAGES[name]
    outs = {p: tmp_path / p for p in PRECISIONS}
    dtypes, hook = conv_output_dtypes()
    try:
        for precision in PRECISIONS:
            main([str(a) for a in argv(env, outs[precision])] + ["--precision", precision])
    finally:
        hook.remove()
    assert dtypes == {torch.float32, torch.bfloat16}
    for folder in folders:
        fp32, bf16 = (label_maps(outs[p] / folder) for p in PRECISIONS)
        assert list(bf16) == list(fp32) and fp32
        same = np.mean([np.mean(bf16[k] == fp32[k]) for k in fp32])
        assert same >= BF16_SAME_LABELS, (folder, same)  # measured >= 0.993
        settings = json.loads((outs["bf16"] / folder / SETTINGS_FILE).read_text())
        assert settings["precision"] == "bf16"
    code, lines = run_cli(main, argv(env, outs["fp32"]) + ["--precision", "bf16"], capsys)
    assert code == 2 and len(lines) == 1
    assert "was written with precision \"fp32\", this run has precision \"bf16\"" in lines[0]
