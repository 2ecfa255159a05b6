"""Kill and resume (issue 14): every trainer and every inference stage, stopped at a
random step and run again (trainers with --resume), ends with files byte-identical to an
uninterrupted run's. Stops are simulated in this process (a loader that dies before its
next batch, a writer that dies before its next file: what a kill leaves on disk, since
every write is atomic); one trainer is killed for real with SIGKILL. Also: --resume
without a saved state starts fresh, non-finite weights never replace a checkpoint, a
trainer (and a run_iterations round) whose loss diverges stops with one line and exit 1
leaving its files as they were, training logs are strict JSON, and pool workers end with
a killed stage."""
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gen_pgt
import infer_aff
import infer_AuxAff
import infer_cam
import infer_cls
import infer_seg
import make_pgt
import run_iterations
import split_img
import tool.cam.infercam
import tool.core.io
import train_aff
import train_AuxAff
import train_cls
import train_seg
from stage_inputs import WIDTH, make_stage_inputs, run_cli, snapshot
from tool.core.checkpoint import save_checkpoint
from tool.core.io import RunError, json_line, save_json

REPO = Path(__file__).resolve().parents[1]
SEED = 14  # the random stopping steps come from this seed (and the stage's name)
GONE_WITHIN_S = 5.0


class Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so nothing on the way catches it."""


def stop_step(name, last):
    """The step (1..last) at which `name` is stopped."""
    return random.Random(f"{SEED}:{name}").randint(1, last)


def strings(argv):
    return [str(a) for a in argv]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_stage_inputs(tmp_path_factory.mktemp("resume") / "inputs")


# ----------------------------------------------------------------- trainers

class DyingLoader:
    """A DataLoader that hands out `budget[0]` batches in all (over its epochs), then dies."""

    def __init__(self, loader, budget):
        self.loader, self.budget = loader, budget

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if self.budget[0] == 0:
                raise Killed
            self.budget[0] -= 1
            yield batch


TRAINERS = {
    # name: (module, loader factory it calls, argv(env, out), steps of the whole run,
    #        the files compared: the weights, then the training state --resume reads)
    "train_cls": (train_cls, "classifier_loader", lambda e, out: [
        "--train_list", e.train_list, "--voc12_root", e.voc, "--save_dir", out, "--width", WIDTH,
        "--crop_size", "64", "--resize_long", "64", "96", "--batch_size", "2",
        "--num_workers", "0", "--max_epoches", "3", "--device", "cpu"], 6,
        ("resnet38_cls.pth", "resnet38_cls_state.pth")),
    "train_aff": (train_aff, "affinity_loader", lambda e, out: [
        "--train_list", e.train_list, "--voc12_root", e.voc, "--la_crf_dir", e.la,
        "--ha_crf_dir", e.ha, "--weights", e.weights["aff"], "--save_dir", out,
        "--crop_size", "72", "--batch_size", "2", "--num_workers", "0", "--max_epoches", "2",
        "--width", WIDTH, "--device", "cpu"], 4, ("resnet38_aff.pth", "resnet38_aff_state.pth")),
    "train_AuxAff": (train_AuxAff, "make_loader", lambda e, out: [
        "--img_path", e.images, "--seg_pgt_path", e.voc / "SegmentationClassAug",
        "--sal_pgt_path", e.sal, "--list_path", e.train_list, "--cls_labels", e.cls_labels,
        "--init_weights", e.weights["cls"], "--save_path", out, "--width", WIDTH,
        "--batch_size", "2", "--crop_size", "64", "--num_epochs", "2", "--num_workers", "0",
        "--print_intervals", "1", "--device", "cpu"], 4,
        ("AuxSegNet_final.pth", "AuxSegNet_state.pth")),
    "train_seg": (train_seg, "seg_train_loader", lambda e, out: [
        "--model", "largefov", "--width", WIDTH, "--train_list", e.train_list,
        "--voc12_root", e.voc, "--label_dir", e.gt, "--crop_size", "48", "--batch_size", "2",
        "--num_workers", "0", "--max_iters", "5", "--save_every", "2",
        "--save_path", out / "seg.pth", "--device", "cpu"], 5, ("seg.pth", "seg.pth.state")),
}


@pytest.fixture(scope="module")
def straight(env, tmp_path_factory):
    """Each trainer run once without a stop: {name: output folder}."""
    outs = {}
    for name, (module, _, argv, _, _) in TRAINERS.items():
        outs[name] = tmp_path_factory.mktemp(f"straight_{name}")
        module.main(strings(argv(env, outs[name])))
    return outs


def same_training_state(a, b):
    """Equal weights, optimizer state and position (AuxSegNet's state also holds its log,
    whose images/s differ from run to run)."""
    a, b = (torch.load(p, weights_only=True) for p in (a, b))

    def flat(state):
        return {f"model.{k}": v for k, v in state["model"].items()} | {
            f"optimizer.{i}.{k}": v for i, s in state["optimizer"]["state"].items()
            for k, v in s.items()}

    fa, fb = flat(a), flat(b)
    return (a["step"], a["epoch"]) == (b["step"], b["epoch"]) and fa.keys() == fb.keys() and \
        all(torch.equal(fa[k], fb[k]) for k in fa)


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_trainer_stopped_at_a_random_step_resumes_exactly(name, env, straight, tmp_path,
                                                           monkeypatch, capsys):
    module, factory, argv, steps, compared = TRAINERS[name]
    step = stop_step(name, steps - 1)
    budget = [step]
    make = getattr(module, factory)
    monkeypatch.setattr(module, factory, lambda *a, **k: DyingLoader(make(*a, **k), budget))
    with pytest.raises(Killed):
        module.main(strings(argv(env, tmp_path)))
    monkeypatch.undo()
    weights, state = compared
    saved = (tmp_path / state).exists()
    capsys.readouterr()
    module.main(strings(argv(env, tmp_path)) + ["--resume"])
    assert ("starting fresh" in capsys.readouterr().out) != saved
    assert (tmp_path / weights).read_bytes() == (straight[name] / weights).read_bytes(), \
        f"{name} stopped after step {step}: the weights differ"
    assert same_training_state(tmp_path / state, straight[name] / state), \
        f"{name} stopped after step {step}: the training state differs"


def test_train_seg_killed_for_real_resumes_exactly(env, straight, tmp_path):
    """SIGKILL at a random logged iteration, then --resume: same weights as straight."""
    _, _, argv, steps, _ = TRAINERS["train_seg"]
    kill_at = stop_step("train_seg kill -9", steps - 2)  # two steps left to kill it in
    cmd = [sys.executable, str(REPO / "train_seg.py"), *strings(argv(env, tmp_path)),
           "--log_every", "1", "--save_every", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"))
    try:
        for line in proc.stdout:
            if line.startswith("{") and json.loads(line)["iter"] >= kill_at:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "train_seg finished before it was killed"
    train_seg.main(strings(argv(env, tmp_path)) + ["--save_every", "1", "--resume"])
    assert (tmp_path / "seg.pth").read_bytes() == (straight["train_seg"] / "seg.pth").read_bytes()


def test_train_seg_batches_do_not_depend_on_the_workers(env, straight, tmp_path):
    _, _, argv, _, _ = TRAINERS["train_seg"]
    train_seg.main(strings(argv(env, tmp_path)) + ["--num_workers", "2"])
    assert (tmp_path / "seg.pth").read_bytes() == (straight["train_seg"] / "seg.pth").read_bytes()


def test_resume_without_saved_state_starts_fresh_and_says_so(env, straight, tmp_path, capsys):
    _, _, argv, _, _ = TRAINERS["train_AuxAff"]
    train_AuxAff.main(strings(argv(env, tmp_path)) + ["--resume"])
    out = capsys.readouterr().out
    assert f"train_AuxAff: --resume: no training state at {tmp_path / 'AuxSegNet_state.pth'} " \
           "yet, starting fresh" in out
    assert f"{env.weights['cls']}: loaded" in out  # a fresh start loads --init_weights
    final = "AuxSegNet_final.pth"
    assert (tmp_path / final).read_bytes() == (straight["train_AuxAff"] / final).read_bytes()


# ----------------------------------------------------------------- inference stages

def split_folder(env, tmp):
    """split_img's output for infer_cam (made once per test folder)."""
    folder = tmp.parent / "split_for_infer_cam"
    if not folder.exists():
        split_img.main(strings(STAGES["split_img"][1](env, folder)))
    return folder


STAGES = {
    # name: (module, argv(env, out))
    "infer_cls": (infer_cls, lambda e, out: [
        "--infer_list", e.train_list, "--voc12_root", e.voc, "--weights", e.weights["cls"],
        "--width", WIDTH, "--scales", "1.0", "0.5", "--device", "cpu", "--out_cam", out / "cam",
        "--out_cam_pred", out / "pred", "--out_la_crf", out / "la", "--out_ha_crf", out / "ha"]),
    "split_img": (split_img, lambda e, out: [
        "--infer_list", e.train_list, "--voc12_root", e.voc, "--weights", e.weights["cls"],
        "--width", WIDTH, "--scales", "1.0", "--device", "cpu", "--split_path", out,
        "--out_cam", out / "cam"]),
    "infer_cam": (infer_cam, lambda e, out: [
        "--infer_list", e.train_list, "--voc12_root", e.voc, "--weights", e.weights["cls"],
        "--width", WIDTH, "--scales", "1.0", "--device", "cpu", "--max_rounds", "2",
        "--split_path", split_folder(e, out), "--out_cam", out / "cam"]),
    "infer_aff": (infer_aff, lambda e, out: [
        "--infer_list", e.train_list, "--voc12_root", e.voc, "--cam_dir", e.cam,
        "--weights", e.weights["aff"], "--width", WIDTH, "--logt", "4", "--device", "cpu",
        "--out_rw", out / "rw", "--out_overlay", out / "overlay"]),
    "make_pgt": (make_pgt, lambda e, out: [
        "--list", e.train_list, "--cam_dir", e.cam, "--sal_dir", e.sal,
        "--cls_labels", e.cls_labels, "--out_dir", out / "pgt"]),
    "gen_pgt": (gen_pgt, lambda e, out: [
        "--weights", e.weights["aux"], "--img_path", e.images, "--SALpath", e.sal,
        "--seg_pgt_path", out / "seg", "--sal_pgt_path", out / "sal", "--list_path",
        e.train_list, "--cls_labels", e.cls_labels, "--device", "cpu"]),
    "infer_AuxAff": (infer_AuxAff, lambda e, out: [
        "--img_path", e.images, "--weights", e.weights["aux"], "--list_path", e.train_list,
        "--device", "cpu", "--save_path", out / "pred", "--out_overlay", out / "overlay",
        "--scales", "1.0", "0.75", "--flip"]),
    "infer_seg": (infer_seg, lambda e, out: [
        "--model", "largefov", "--weights", e.weights["seg"], "--width", WIDTH,
        "--infer_list", e.train_list, "--voc12_root", e.voc, "--device", "cpu",
        "--save_path", out / "pred", "--out_overlay", out / "overlay"]),
}


class DyingWriter:
    """atomic_path that writes `budget[0]` files, then dies before the next."""

    def __init__(self, atomic_path, budget):
        self.atomic_path, self.budget = atomic_path, budget

    def __call__(self, path):
        if self.budget[0] == 0:
            raise Killed
        self.budget[0] -= 1
        return self.atomic_path(path)


def relative_snapshot(folder):
    return {os.path.relpath(k, folder): v for k, v in snapshot(folder).items()}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_inference_stage_stopped_at_a_random_image_resumes_exactly(name, env, tmp_path,
                                                                   monkeypatch):
    module, argv = STAGES[name]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    straight_argv, stopped_argv = strings(argv(env, straight)), strings(argv(env, stopped))
    counter = [10 ** 9]
    writer = DyingWriter(tool.core.io.atomic_path, counter)
    for module_with_writer in (tool.core.io, tool.cam.infercam):  # (infercam imports it by name)
        monkeypatch.setattr(module_with_writer, "atomic_path", writer)
    module.main(straight_argv)
    writes = 10 ** 9 - counter[0]
    step = stop_step(name, writes - 1)
    counter[0] = step
    with pytest.raises(Killed):
        module.main(stopped_argv)
    monkeypatch.undo()
    module.main(stopped_argv)
    expected = relative_snapshot(straight)
    assert len(expected) == writes
    assert relative_snapshot(stopped) == expected, f"{name} stopped at write {step}/{writes}"


# ----------------------------------------------------------------- checkpoints and logs

def test_identical_runs_write_identical_checkpoint_bytes(tmp_path):
    torch.manual_seed(0)
    weights = {"a.weight": torch.randn(3, 4), "a.bias": torch.zeros(3)}
    save_checkpoint(tmp_path / "one.pth", weights)
    save_checkpoint(tmp_path / "another_name.pth", weights)
    assert (tmp_path / "one.pth").read_bytes() == (tmp_path / "another_name.pth").read_bytes()
    assert b"another_name" not in (tmp_path / "another_name.pth").read_bytes()


def test_non_finite_weights_never_replace_a_checkpoint(tmp_path):
    path = tmp_path / "w.pth"
    save_checkpoint(path, {"w": torch.ones(2)})
    before = path.read_bytes()
    for bad in (float("nan"), float("inf")):
        with pytest.raises(RunError, match=r"w\.pth: not saved, the weights hold NaN/Inf"):
            save_checkpoint(path, {"w": torch.tensor([1.0, bad])})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["w.pth"]


# the one line a diverged run ends with (tool.core.train_step.check_finite)
DIVERGED_LINE = re.compile(r"error: iteration (\d+): (the loss|loss term '\w+') is (nan|-?inf)"
                           r"\b.*; stopped before the optimiser step")
ABSURD_LR = "1e30"  # the first step leaves finite but huge weights, the next loss is NaN


def refuse_constant(token):
    raise ValueError(f"non-standard JSON token {token}")


def strict_json_files(folder):
    """{name: parsed} of the .json files in `folder`, parsed strictly (no NaN/Infinity)."""
    return {p.name: json.loads(p.read_text(), parse_constant=refuse_constant)
            for p in sorted(Path(folder).glob("*.json"))}


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_diverged_training_exits_1_and_keeps_the_checkpoint(name, env, straight, tmp_path,
                                                            capsys):
    """A finished run's outputs, then the same run again at an absurd learning rate: one
    line naming the iteration and the loss term, exit 1, every file as it was."""
    module, _, argv, _, compared = TRAINERS[name]
    shutil.copytree(straight[name], tmp_path, dirs_exist_ok=True)
    assert all((tmp_path / file).is_file() for file in compared)
    before = snapshot(tmp_path)
    code, lines = run_cli(module.main, argv(env, tmp_path) + ["--lr", ABSURD_LR], capsys)
    assert code == 1 and len(lines) == 1, lines
    diverged = DIVERGED_LINE.match(lines[0])
    assert diverged and diverged[1] == "2", lines[0]
    assert snapshot(tmp_path) == before
    logs = strict_json_files(tmp_path)
    assert list(logs) == (["AuxSegNet_log.json"] if name == "train_AuxAff" else [])
    assert all(math.isfinite(record["loss"]) for log in logs.values() for record in log)


def test_diverged_round_of_run_iterations_exits_1_and_keeps_the_earlier_round(env, tmp_path,
                                                                               capsys):
    """Round 1 trains normally; round 2 (from round 1's weights) diverges: one line, exit 1,
    round 1 and the summary untouched, round 2 without weights, log or record."""
    work = tmp_path / "iter"
    train = "--crop_size 64 --batch_size 2 --max_iters 2 --num_workers 0"
    argv = ["--work_dir", work, "--img_path", env.images, "--SALpath", env.sal,
            "--seg_pgt_path", env.voc / "SegmentationClassAug", "--sal_pgt_path", env.sal,
            "--init_weights", env.weights["cls"], "--list_path", env.train_list,
            "--cls_labels", env.cls_labels, "--width", WIDTH, "--num_epochs", "1",
            "--device", "cpu"]
    code, _ = run_cli(run_iterations.main, argv + ["--rounds", "1", "--train_args", train],
                      capsys)
    assert code is None
    round_1 = snapshot(work / "round_1", work / "summary.json")
    code, lines = run_cli(run_iterations.main,
                          argv + ["--rounds", "2", "--train_args", f"{train} --lr {ABSURD_LR}"],
                          capsys)
    assert code == 1 and len(lines) == 1, lines
    diverged = DIVERGED_LINE.match(lines[0])
    assert diverged and diverged[1] == "2", lines[0]
    assert snapshot(work / "round_1", work / "summary.json") == round_1
    model_2 = work / "round_2" / "model"
    assert not (work / "round_2" / "done.json").exists()
    assert not [p.name for p in model_2.glob("*.pth")]
    assert strict_json_files(model_2) == {}


def test_logs_are_strict_json(tmp_path):
    record = {"iter": 3, "loss": float("nan"), "terms": [1.0, float("inf"), -float("inf")]}
    save_json(tmp_path / "log.json", [record])
    text = (tmp_path / "log.json").read_text()
    assert json.loads(text, parse_constant=refuse_constant) == [
        {"iter": 3, "loss": None, "terms": [1.0, None, None]}]
    assert json.loads(json_line(record), parse_constant=refuse_constant)["loss"] is None


# ----------------------------------------------------------------- worker pools

def session_processes(sid):
    """Live processes of session `sid` (the killed stage's children keep its session)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry))
    return found


def kill_during_pool(cmd, workers):
    """Start `cmd` in its own session, SIGKILL it once `workers` pool processes are up,
    and return the processes of its session still alive GONE_WITHIN_S seconds later."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=REPO,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.monotonic() + 120
        # the stage, the forkserver, the resource tracker and the workers
        while len(session_processes(proc.pid)) < 3 + workers:
            assert proc.poll() is None, "the stage ended before its pool started"
            assert time.monotonic() < deadline, "the pool never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + GONE_WITHIN_S
        while session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        return session_processes(proc.pid)
    finally:
        for pid in session_processes(proc.pid):
            os.kill(pid, signal.SIGKILL)


def test_infer_cls_killed_during_the_crf_pool_leaves_no_process(env, tmp_path):
    """SIGKILL as soon as the pool's workers exist (while they start): none survives."""
    # the CAMs exist, so the run goes straight to the CRF pool (large images keep it busy)
    big = tmp_path / "voc"
    shutil.copytree(env.voc, big)
    rng = np.random.default_rng(0)
    ids = env.ids[:4]
    for img_id in ids:
        Image.fromarray(rng.integers(0, 255, (600, 600, 3), np.uint8)).save(
            big / "JPEGImages" / f"{img_id}.jpg")
        tool.core.io.save_npy(tmp_path / "cam" / f"{img_id}.npy",
                         {3: rng.random((600, 600)).astype(np.float32)})
    (tmp_path / "list.txt").write_text("".join(f"{i}\n" for i in ids))
    labels = {i: np.eye(20, dtype=np.float32)[3] for i in ids}
    tool.core.io.save_npy(tmp_path / "labels.npy", labels)
    cmd = [sys.executable, str(REPO / "infer_cls.py"), "--infer_list", str(tmp_path / "list.txt"),
           "--voc12_root", str(big), "--cls_labels", str(tmp_path / "labels.npy"),
           "--weights", str(env.weights["cls"]), "--width", WIDTH, "--device", "cpu",
           "--out_cam", str(tmp_path / "cam"), "--out_la_crf", str(tmp_path / "la"),
           "--num_workers", "2"]
    assert kill_during_pool(cmd, workers=2) == []
