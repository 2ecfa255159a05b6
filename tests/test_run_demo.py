"""run_demo.py: the typed profile, the stage scheduler (needs, cores, skip/redo, failures),
every stage command accepted by its script, the result table and the claims lines."""
import os

import numpy as np
import pytest

import run_demo
from run_demo import Claim, Scheduler, Stage
from tool.seg.metrics import object_precision_recall


def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(body)
    return str(path)


def stamp_script(tmp_path, seconds=0.0):
    """Appends 'start end' (perf_counter) to the file named by argv[1] after sleeping."""
    return script(tmp_path, "stamp.py",
                  "import sys, time\nt = time.time()\n"
                  f"time.sleep({seconds})\n"
                  "open(sys.argv[1], 'a').write(f'{t} {time.time()}\\n')\n")


def test_stage_runs_once_then_skips_until_redo(tmp_path):
    stamp, log = stamp_script(tmp_path), tmp_path / "log"
    stage = Stage("count", stamp, (str(log),))
    Scheduler(str(tmp_path / "out"), cores=1).run([stage])
    Scheduler(str(tmp_path / "out"), cores=1).run([stage])
    assert len(log.read_text().splitlines()) == 1
    Scheduler(str(tmp_path / "out"), cores=1, redo=("count",)).run([stage])
    assert len(log.read_text().splitlines()) == 2


def test_needs_order_stages_and_cores_limit_overlap(tmp_path):
    stamp = stamp_script(tmp_path, seconds=0.6)
    logs = {n: tmp_path / f"{n}.log" for n in ("a", "b", "c", "d")}
    stages = [Stage("a", stamp, (str(logs["a"]),)),
              Stage("b", stamp, (str(logs["b"]),)),
              Stage("c", stamp, (str(logs["c"]),), needs=("a", "b")),
              Stage("d", stamp, (str(logs["d"]),), needs=("c",), threads=2)]
    timings = Scheduler(str(tmp_path / "out"), cores=2).run(stages)
    span = {n: tuple(map(float, p.read_text().split())) for n, p in logs.items()}
    assert span["a"][0] < span["b"][1] and span["b"][0] < span["a"][1]  # a, b side by side
    assert span["c"][0] >= max(span["a"][1], span["b"][1])              # c after both
    assert span["d"][0] >= span["c"][1]
    assert set(timings) == set(logs) and all(t["cpu"] >= 0 for t in timings.values())


def test_a_stage_never_takes_more_cores_than_there_are_free(tmp_path):
    stamp = stamp_script(tmp_path, seconds=0.5)
    logs = {n: tmp_path / f"{n}.log" for n in ("one", "two")}
    stages = [Stage("one", stamp, (str(logs["one"]),)),
              Stage("two", stamp, (str(logs["two"]),), threads=2)]
    Scheduler(str(tmp_path / "out"), cores=2).run(stages)
    one, two = (tuple(map(float, logs[n].read_text().split())) for n in ("one", "two"))
    assert two[0] >= one[1] or one[0] >= two[1]


def test_failed_stage_is_reported_and_not_marked_done(tmp_path):
    fail = script(tmp_path, "fail.py", "print('something broke')\nraise SystemExit(3)\n")
    with pytest.raises(run_demo.StageFailed, match="something broke"):
        Scheduler(str(tmp_path / "out"), cores=1).run([Stage("fail", fail, ())])
    assert not (tmp_path / "out" / "done" / "fail").exists()


def test_sharded_stage_splits_the_list_and_waits_for_its_own_shard():
    stages = run_demo.sharded("infer_cam", "infer_cam.py", ["--x", "1"], 2, needs=("train",),
                              sharded_needs=("split_img",))
    assert [s.name for s in stages] == ["infer_cam.0", "infer_cam.1"]
    assert all(s.group == "infer_cam" for s in stages)
    assert stages[1].argv[-2:] == ("--shard", "1/2")
    assert stages[1].needs == ("train", "split_img.1")
    single = run_demo.sharded("infer_cam", "infer_cam.py", ["--x", "1"], 1, needs=("train",),
                              sharded_needs=("split_img",))
    assert [(s.name, s.needs) for s in single] == [("infer_cam", ("train", "split_img"))]


def test_profile_overrides_are_typed():
    args = run_demo.build_parser().parse_args(["--set", "cls_epochs=3", "cls_resize_long=(64,96)"])
    run = run_demo.make_run(args, "/tmp/out", 0)
    assert run.profile.cls_epochs == 3 and run.profile.cls_resize_long == (64, 96)
    with pytest.raises(SystemExit):
        run_demo.build_parser().parse_args(["--set", "no_such_field=1"])
    assert run_demo.flags(crop_size=128, lr=None, resize_long=(96, 160)) == \
        ["--crop_size", "128", "--resize_long", "96", "160"]


@pytest.mark.parametrize("profile, dataset", [("demo", "voc"), ("paper", "voc"), ("demo", "coco"),
                                              ("paper", "coco")])
def test_every_stage_command_parses_with_its_script(profile, dataset, tmp_path):
    """Both profiles (the demo and the papers' recipe), on VOC and on COCO, build commands
    that each script's own argument parser accepts: no misspelt or missing flag in the
    driver."""
    argv = ["--profile", profile, "--dataset", dataset, "--out", str(tmp_path / "out")]
    if profile == "paper":
        argv += ["--voc12_root", str(tmp_path / "voc")]
    args = run_demo.build_parser().parse_args(argv)
    stages = run_demo.pipeline(run_demo.make_run(args, str(tmp_path / "out"), 0))
    scripts = {s.script for s in stages}
    for needed in ("train_cls.py", "infer_cls.py", "split_img.py", "infer_cam.py",
                   "train_aff.py", "infer_aff.py", "make_pgt.py", "run_iterations.py",
                   "infer_AuxAff.py", "train_seg.py", "infer_seg.py", "eval_seg.py"):
        assert needed in scripts, needed
    if profile == "demo" and dataset == "coco":  # the demo in COCO layout, prepared as COCO is
        assert {"data/demo_to_coco.py", "data/make_coco.py"} <= scripts
    names = {s.name for s in stages} | {s.group for s in stages}
    for stage in stages:
        assert set(stage.needs) <= names, stage.name
        module = run_demo.stage_module(stage)
        try:
            parsed = module.build_parser().parse_args(list(stage.argv))
            if stage.script == "run_iterations.py":  # its --train_args go on to train_AuxAff.py
                import train_AuxAff
                for k in (1, 2):
                    train_AuxAff.build_parser().parse_args(module.train_argv(parsed, k))
        except SystemExit:
            pytest.fail(f"stage {stage.name}: {stage.script} rejects {stage.argv}")


def test_demo_starts_every_network_from_the_pretrained_trunk_with_paper_optimisers(tmp_path):
    args = run_demo.build_parser().parse_args(["--out", str(tmp_path)])
    stages = {s.name: s for s in run_demo.pipeline(run_demo.make_run(args, str(tmp_path), 0))}
    pretrained = os.path.join(run_demo.REPO, run_demo.PRETRAINED)
    for name, flag in (("train_cls", "--weights"), ("train_aff", "--weights"),
                       ("train_seg_refined", "--init_weights")):
        argv = stages[name].argv
        assert argv[argv.index(flag) + 1] == pretrained
    for name in ("train_cls", "train_aff"):  # psa's optimiser and frozen BatchNorm
        assert "--momentum" not in stages[name].argv and "--train_bn" not in stages[name].argv
    assert "--momentum" not in stages["aux_rounds"].argv[
        stages["aux_rounds"].argv.index("--train_args") + 1]


def test_coco_demo_reads_the_layout_make_coco_writes(tmp_path):
    args = run_demo.build_parser().parse_args(["--dataset", "coco", "--out", str(tmp_path)])
    run = run_demo.make_run(args, str(tmp_path), 0)
    paths = run.paths
    assert paths.train_list == os.path.join(paths.root, "train.txt")
    assert paths.gt_dir == os.path.join(paths.root, "SegmentationClass")
    assert paths.sal_dir == os.path.join(str(tmp_path), run_demo.DEMO_COCO, "SAL")
    assert run_demo.picture_ids(run)[0] == "COCO_train2014_002026000001"
    evaluations = [s for s in run_demo.pipeline(run) if s.script == "eval_seg.py"]
    assert evaluations and all(s.argv[s.argv.index("--dataset") + 1] == "coco" for s in evaluations)


def confusion(tp, fp, fn, background=1000):
    """A 3-class (background + 2) confusion matrix with the given object-pixel counts."""
    conf = np.zeros((3, 4), np.int64)
    conf[0, 0] = background
    conf[1, 1], conf[2, 2] = tp
    conf[0, 1], conf[0, 2] = fp
    conf[1, 0], conf[2, 0] = fn
    return conf.tolist()


def test_object_precision_and_recall_count_pixels_of_the_right_class():
    result = {"confusion_matrix": confusion(tp=(30, 10), fp=(10, 0), fn=(10, 30))}
    precision, recall = object_precision_recall(result["confusion_matrix"])
    assert precision == pytest.approx(100 * 40 / 50) and recall == pytest.approx(100 * 40 / 80)


def fake_results(rw=70.0, cam=(60.0, 0.15), infercam=(64.0, 0.3), infercam_rw=72.0,
                 pgt=((50.0, (80, 20)), (55.0, (78, 40))), seg=(66.0, 60.0, 62.0)):
    def entry(miou, best=None, pr=(50, 50)):
        tp = (pr[1], pr[1])
        r = {"miou": miou, "confusion_matrix": confusion(
            tp=tp, fp=(round(pr[1] * (100 - pr[0]) / pr[0]), 0), fn=(100 - pr[1], 100 - pr[1]))}
        if best is not None:
            r["sweep"] = {"best_threshold": best[1], "best_miou": best[0]}
        return r
    refined, cam_labels, single = seg
    results = {"cam": entry(cam[0] - 2, cam), "infercam": entry(infercam[0] - 5, infercam),
               "rw": entry(rw), "infercam_rw": entry(infercam_rw),
               "pgt_init": entry(pgt[0][0], pr=pgt[0][1]),
               "pgt_round1": entry(pgt[1][0], pr=pgt[1][1]),
               "seg_refined_msf_crf": entry(refined), "seg_cam_msf_crf": entry(cam_labels),
               "seg_refined_ss": entry(single)}
    return results


def test_claims_say_holds_when_the_numbers_follow_the_papers():
    lines = [c.line() for c in run_demo.claims(fake_results(), rounds=1)]
    assert len(lines) == 7 and all(" — holds: " in line for line in lines)
    assert "70.0 vs 60.0" in lines[0]
    assert "64.0 (bg 0.30) vs 60.0 (bg 0.15)" in lines[1]


@pytest.mark.parametrize("change, broken", [
    ({"rw": 59.0}, 0),                                  # walk below the CAM's best
    ({"infercam": (58.0, 0.3)}, 1),
    ({"infercam_rw": 69.0}, 2),
    ({"pgt": ((50.0, (80, 20)), (49.0, (78, 40)))}, 3),  # round 1 below the fusion
    ({"pgt": ((50.0, (80, 20)), (55.0, (60, 25)))}, 4),  # precision lost more than recall won
    ({"seg": (59.0, 60.0, 58.0)}, 5),
    ({"seg": (66.0, 60.0, 67.0)}, 6),
])
def test_each_claim_fails_alone_when_its_numbers_do_not_follow(change, broken):
    outcome = [c.holds for c in run_demo.claims(fake_results(**change), rounds=1)]
    assert outcome == [i != broken for i in range(7)]


def test_results_text_is_the_table_then_one_line_per_claim():
    text = run_demo.results_text(fake_results(), 1, "demo", 0)
    assert text == run_demo.results_text(fake_results(), 1, "demo", 0)
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| product | split | mIoU |")
    assert "| CAM (psa multi-scale) | train | 58.0 | 0.15 (60.0) |" in text
    claims = text.split("Claims:\n")[1].splitlines()
    assert len(claims) == 7 and all(line.startswith("- ") for line in claims)
    assert "seconds" not in text  # timings live in timings.md


def test_seeds_table_gives_mean_and_sample_std_and_claims_per_seed():
    per_seed = {0: fake_results(rw=70.0), 1: fake_results(rw=72.0), 2: fake_results(rw=59.0)}
    text = run_demo.seeds_text(per_seed, rounds=1)
    row = next(line for line in text.splitlines() if line.startswith("| random walk on CAM |"))
    assert "| 67.0 ± 7.0 |" in row and row.endswith("| 70.0 | 72.0 | 59.0 |")
    assert text.count("seed 2:") == 1 and "all claims hold on 2 of 3 seeds" in text


def test_a_rerun_that_ran_nothing_keeps_the_timings_of_the_work(tmp_path):
    path = tmp_path / "timings.md"
    timings = {"data": {"start": 0.0, "seconds": 8.0, "cpu": 3.0, "threads": 2}}
    run_demo.write_timings(path, timings, 8.0, 2)
    first = path.read_text()
    assert "| data | 0.0 | 8.0 | 3.0 | 2 |" in first
    run_demo.write_timings(path, {}, 0.1, 2)
    assert path.read_text() == first


def test_claim_line_format():
    assert Claim("psa", "x > y", False, "1 vs 2").line() == "- psa: x > y — does not hold: 1 vs 2"


def test_redo_passes_overwrite_to_scripts_that_skip_finished_outputs():
    stage = Stage("rw", "infer_aff.py", ("--x",))
    assert run_demo.overwriting(stage).argv == ("--x", "--overwrite")
    trainer = Stage("train_cls", "train_cls.py", ("--x",))
    assert run_demo.overwriting(trainer).argv == ("--x",)
