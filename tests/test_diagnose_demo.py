"""bench/diagnose_demo.py: the pieces its measured causes rest on."""
import numpy as np
import pytest
from scipy import ndimage

from bench import diagnose_demo as diag
from data.make_demo_dataset import make_demo_dataset
from tool.core.io import IGNORE_LABEL, load_cam_dict, save_npy
from tool.psa.aff_labels import crf_label, crf_scores


def test_ground_truth_crf_dicts_give_the_ground_truth_as_affinity_labels(tmp_path):
    """psa's la/ha rule applied to the oracle dicts returns the ground truth, with the
    boundary band left unlabelled (neither object nor background)."""
    out = tmp_path / "run"
    make_demo_dataset(out / "data", seed=3, num_train=4, num_val=1)
    run = diag.Run(out)
    diag.write_ground_truth_crf_dicts(run, tmp_path / "gt_crf")
    for img_id in run.ids:
        gt = run.gt(img_id)
        scores, keys = crf_scores(tmp_path / "gt_crf" / "la" / f"{img_id}.npy",
                                  tmp_path / "gt_crf" / "ha" / f"{img_id}.npy", gt.shape)
        label = crf_label(scores, keys, stride=1)
        assert (gt == IGNORE_LABEL).any() and (gt > 0).any()
        np.testing.assert_array_equal(label, gt)
        present = sorted(load_cam_dict(tmp_path / "gt_crf" / "la" / f"{img_id}.npy"))
        assert present == [0] + [c + 1 for c in np.flatnonzero(run.labels[img_id])]


def test_with_flags_replaces_values_and_needs_the_flag():
    argv = ["train_aff.py", "--save_dir", "a", "--width", "0.125"]
    assert diag.with_flags(argv, save_dir="b") == ["train_aff.py", "--save_dir", "b",
                                                   "--width", "0.125"]
    try:
        diag.with_flags(argv, seed=1)
    except ValueError:
        pass
    else:
        raise AssertionError("a missing flag must fail")


def test_unsharded_drops_only_the_shard_flag():
    argv = ["infer_cam.py", "--shard", "0/2", "--width", "0.125"]
    assert diag.unsharded(argv) == ["infer_cam.py", "--width", "0.125"]
    assert diag.unsharded(["rw.py", "--scale", "2"]) == ["rw.py", "--scale", "2"]


def test_without_flags_drops_only_the_named_pairs():
    argv = ["infer_cls.py", "--out_cam", "a", "--out_la_crf", "b", "--width", "0.125"]
    assert diag.without_flags(argv, "out_la_crf", "out_ha_crf") == [
        "infer_cls.py", "--out_cam", "a", "--width", "0.125"]


def test_flag_value_reads_the_value_after_the_flag():
    argv = ["make_demo_dataset.py", "--root", "x", "--seed", "4"]
    assert diag.flag_value(argv, "seed") == "4"
    with pytest.raises(ValueError):
        diag.flag_value(argv, "num_train")


def test_best_threshold_line_picks_the_sweep_threshold_with_the_highest_miou(tmp_path):
    """A CAM that is right only above 0.3: the line names a threshold in (0.3, 0.6]
    and scores the map as the ground truth there."""
    out = tmp_path / "run"
    make_demo_dataset(out / "data", seed=5, num_train=3, num_val=1)
    run = diag.Run(out)
    cams = tmp_path / "cams"
    for img_id in run.ids:
        gt = run.gt(img_id)
        cam = {}
        for c in np.flatnonzero(run.labels[img_id]):
            cam[int(c)] = np.where(gt == c + 1, 0.6, 0.3).astype(np.float32)
        save_npy(cams / f"{img_id}.npy", cam)
    line = diag.best_threshold_line(run, "oracle", cams)
    best = float(line.split("best background ")[1].split(")")[0])
    assert 0.3 <= best < 0.6
    assert "object P/R 100.0 / 100.0" in line


def test_scores_line_counts_objects_labelled_background():
    conf = np.zeros((3, 4), np.int64)
    conf[0, 0] = 10   # background right
    conf[1, 1] = 6    # class 1 right
    conf[1, 0] = 2    # class 1 labelled background
    conf[2, 3] = 2    # class 2 unlabelled (255)
    line = diag.scores_line("x", conf)
    assert "object P/R 100.0 /  60.0" in line and "background 20.0 %" in line


def regional_cams(run, values):
    """CAM dicts worth values[region] on each region of each present class's map."""
    for img_id in run.ids:
        gt = run.gt(img_id)
        cam = {}
        for c in np.flatnonzero(run.labels[img_id]):
            distance = ndimage.distance_transform_edt(gt != c + 1)
            cam[int(c)] = np.select([gt == c + 1, (gt == 0) & (distance <= diag.HALO_PX),
                                     (gt == 0) & (distance > diag.FAR_PX)],
                                    [values["object"], values["halo"], values["far"]],
                                    7.0).astype(np.float32)
        save_npy(run.out / "cams" / f"{img_id}.npy", cam)


def test_activation_by_region_averages_each_region_of_each_class(tmp_path):
    """A map worth 0.8 on its class's objects, 0.5 on background up to 8 px from them and
    0.1 beyond gives exactly those means; pixels 8-16 px away and other objects count
    nowhere."""
    out = tmp_path / "run"
    make_demo_dataset(out / "data", seed=2, num_train=3, num_val=1)
    run = diag.Run(out)
    regional_cams(run, {"object": 0.8, "halo": 0.5, "far": 0.1})
    means = diag.activation_by_region(run, "cams")
    assert sorted(means) == ["far", "halo", "object"]
    np.testing.assert_allclose([means["object"], means["halo"], means["far"]], [0.8, 0.5, 0.1],
                               atol=1e-6)


def test_run_heads_draws_the_run_again_and_splits_objects_into_heads_and_the_rest(tmp_path):
    out = tmp_path / "run"
    make_demo_dataset(out / "data", seed=4, num_train=3, num_val=1)
    run = diag.Run(out)
    assert diag.run_heads(run) is None  # no data log: the seed is unknown
    (out / "logs").mkdir()
    (out / "logs" / "data.log").write_text("python data/make_demo_dataset.py --root x --seed 4\n")
    heads = diag.run_heads(run)
    assert sorted(heads) == sorted(run.ids)
    for img_id in run.ids:
        assert heads[img_id].any() and not (heads[img_id] & (run.gt(img_id) == 0)).any()
    regional_cams(run, {"object": 0.8, "halo": 0.5, "far": 0.1})
    means = diag.activation_by_region(run, "cams", heads)
    np.testing.assert_allclose([means["head"], means["body"]], [0.8, 0.8], atol=1e-6)
    (out / "logs" / "data.log").write_text("python data/make_demo_dataset.py --root x --seed 5\n")
    assert diag.run_heads(run) is None  # another seed draws other images
