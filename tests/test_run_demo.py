"""run_demo.py's bookkeeping: stages run once, are skipped when finished, redone on
request, and the result table states every number with its split."""
import argparse

import pytest

import run_demo


def pipeline(tmp_path, redo=()):
    args = argparse.Namespace(out=str(tmp_path / "out"), profile="demo", redo=list(redo), threads=1)
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
    with pytest.raises(Exception):
        pipe.stage("fail", str(script), [])
    assert not (tmp_path / "out" / "done" / "fail").exists()


def test_result_table_rows_state_split_and_threshold(tmp_path):
    pipe = pipeline(tmp_path)
    pipe.results = {"cam": {"split": "train", "miou": 48.04, "best": (0.25, 50.5)},
                    "aux_val_crf": {"split": "val", "miou": 61.0, "best": None}}
    table = run_demo.result_table(pipe).splitlines()
    assert len(table) == 4  # header, rule, the two products measured
    assert "| CAM (psa multi-scale) | train | 48.0 | 0.25 (50.5) |" in table[2]
    assert table[3].startswith("| AuxSegNet val prediction + CRF | val | 61.0 |")
