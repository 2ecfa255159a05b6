"""run_demo.py's bookkeeping: stages run once, are skipped when finished, redone on
request, and the result table states every number with its split."""
import argparse

import pytest

import run_demo


def pipeline(tmp_path, redo=()):
    args = argparse.Namespace(out=str(tmp_path / "out"), profile="demo", redo=list(redo), threads=1,
                              voc12_root=None)
    return run_demo.Pipeline(args)


def counting_script(tmp_path):
    script = tmp_path / "count.py"
    script.write_text("import sys\nopen(sys.argv[1], 'a').write('x')\n")
    return str(script)


def test_stage_runs_once_then_skips_until_redo(tmp_path):
    script, counter = counting_script(tmp_path), tmp_path / "counter"
    pipeline(tmp_path).stage("count", script, [counter])
    pipeline(tmp_path).stage("count", script, [counter])
    assert counter.read_text() == "x"
    pipeline(tmp_path, redo=["count"]).stage("count", script, [counter])
    assert counter.read_text() == "xx"


def test_failed_stage_is_not_marked_done(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text("raise SystemExit(3)\n")
    pipe = pipeline(tmp_path)
    with pytest.raises(SystemExit) as exit_info:  # the stage's code; it printed its error
        pipe.stage("fail", str(script), [])
    assert exit_info.value.code == 3
    assert not (tmp_path / "out" / "done" / "fail").exists()


def test_result_table_rows_state_split_and_threshold(tmp_path):
    pipe = pipeline(tmp_path)
    pipe.results = {"cam": {"split": "train", "miou": 48.04, "best": (0.25, 50.5)},
                    "aux_val_crf": {"split": "val", "miou": 61.0, "best": None}}
    table = run_demo.result_table(pipe).splitlines()
    assert len(table) == 4  # header, rule, the two products measured
    assert "| CAM (psa multi-scale) | train | 48.0 | 0.25 (50.5) |" in table[2]
    assert table[3].startswith("| AuxSegNet val prediction + CRF | val | 61.0 |")


class RecordingPipeline(run_demo.Pipeline):
    """Records each stage's command instead of running it; evaluations return a fixed
    result so the driver's later stages can be built."""

    def __init__(self, args):
        super().__init__(args)
        self.commands = []

    def stage(self, name, script, argv):
        self.commands.append((name, script, [str(a) for a in argv]))

    def evaluate(self, name, ids_list, pred_dir, gt_dir, kind="png", split="train"):
        self.results[name] = {"split": split, "miou": 50.0,
                              "best": (0.3, 55.0) if kind == "cam" else None}


@pytest.mark.parametrize("profile", sorted(run_demo.PROFILES))
def test_every_stage_command_parses_with_its_script(profile, tmp_path, monkeypatch):
    """Both profiles (the demo and the papers' recipe) build commands that each script's
    own argument parser accepts: no misspelt or missing flag in the driver."""
    import importlib
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "train_aug.txt").write_text("2007_000032\n2007_000039\n")
    monkeypatch.setattr(run_demo, "Pipeline", RecordingPipeline)
    monkeypatch.setattr(run_demo, "final_aux_weights", lambda round_dir: f"{round_dir}/w.pth")
    args = run_demo.build_parser().parse_args(
        ["--profile", profile, "--out", str(tmp_path / "out"), "--voc12_root", str(root),
         "--cls_weights", str(tmp_path / "res38_cls.pth")])
    pipe = run_demo.run(args)
    scripts = [script for _, script, _ in pipe.commands]
    for needed in ("infer_cls.py", "split_img.py", "infer_cam.py", "train_aff.py",
                   "infer_aff.py", "make_pgt.py", "run_iterations.py", "infer_AuxAff.py",
                   "train_seg.py", "infer_seg.py"):
        assert needed in scripts, needed
    for name, script, argv in pipe.commands:
        module = importlib.import_module(script[:-3])
        try:
            parsed = module.build_parser().parse_args(argv)
            if script == "run_iterations.py":  # its --train_args go on to train_AuxAff.py
                import train_AuxAff
                for k in (1, 2):
                    train_AuxAff.build_parser().parse_args(module.train_argv(parsed, k))
        except SystemExit:
            pytest.fail(f"stage {name}: {script} rejects {argv}")
