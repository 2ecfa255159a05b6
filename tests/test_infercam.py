"""InferCam (split_img.py, infer_cam.py) against the released code's outputs (golden case
6c), the erasing rules on toy networks, and both scripts end to end on a demo dataset."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

import infer_cam
import infer_cls
import split_img
from data.make_demo_dataset import make_demo_dataset
from golden import GOLDEN, assert_close, load_golden, needs_golden
from network import resnet38_cls
from stage_inputs import run_cli
from tool.cam import infercam
from tool.cam.multiscale import scaled_inputs, with_flips
from tool.core.checkpoint import save_checkpoint
from tool.core.io import InputError, load_cam_dict, read_image, save_npy
from tool.data.voc import load_cls_labels, read_image_list

IDS = ["2007_000001", "2007_000002", "2007_000003", "2007_000004"]
CAM_ATOL = 5e-5  # golden README §5, normalised CAMs
NUM_CLASSES = 20


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: on the shared 2-core machine, two threads mostly wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def split_ref():
    return load_golden("e2e_infercam_split.npz")


@pytest.fixture(scope="module")
def infer_ref():
    return load_golden("e2e_infercam_infer.npz")


def golden_rgb(img_id):
    return load_golden("e2e_dataset.npz")[f"{img_id}__rgb_pil"]


def golden_label(ref, img_id):
    label = np.zeros(NUM_CLASSES, np.float32)
    label[ref[f"{img_id}__cam_keys"]] = 1
    return label


def dense(keys, values, shape):
    out = np.zeros((NUM_CLASSES,) + tuple(shape), np.float64)
    out[keys] = values
    return out


@needs_golden
@pytest.mark.parametrize("img_id", IDS)
def test_mass_centres_boxes_and_crops_match_golden(split_ref, img_id):
    keys = split_ref[f"{img_id}__cam_keys"]
    rgb = golden_rgb(img_id)
    norm_cam = dense(keys, split_ref[f"{img_id}__cam"], rgb.shape[:2]).astype(np.float32)
    centers = infercam.mass_centers(norm_cam, keys.tolist())
    np.testing.assert_array_equal(centers, split_ref[f"{img_id}__mass_centers"])
    boxes = infercam.split_boxes(centers, *rgb.shape[:2])
    np.testing.assert_array_equal(np.array(boxes), split_ref[f"{img_id}__split_slices"])
    for n, box in enumerate(boxes, 1):
        np.testing.assert_array_equal(infercam.crop(rgb, box)[:, :, ::-1],
                                      split_ref[f"{img_id}__split{n}_written_bgr"])


@needs_golden
@pytest.mark.parametrize("img_id", IDS)
def test_merge_of_golden_crop_cams_gives_golden_cam(split_ref, infer_ref, img_id):
    keys = infer_ref[f"{img_id}__cam_keys"]
    crop_cams = [dense(keys, infer_ref[f"{img_id}__split{n}_cam_matrix"],
                       infer_ref[f"{img_id}__split{n}_cam_matrix"].shape[1:]) for n in range(1, 5)]
    merged = infercam.merge_crop_cams(crop_cams, golden_rgb(img_id).shape[:2])
    assert_close(merged[keys], infer_ref[f"{img_id}__cam"], atol=1e-7, rtol=0, name=img_id)
    assert np.all(np.delete(merged, keys, axis=0) == 0)


@needs_golden
def test_erased_inputs_match_golden_example(split_ref, infer_ref, cls_net):
    """2007_000001 split 2, round 2: chained mask resizing, mask not mirrored."""
    rgb = split_ref["2007_000001__split2_decoded_pil_rgb"]
    label = golden_label(split_ref, "2007_000001")
    first_round, _ = infercam.refine_crop_cam(cls_net, rgb, label, max_rounds=1)
    left = first_round.max(axis=0) < infercam.ERASE_THRESHOLD
    inputs = with_flips(scaled_inputs(rgb))
    erased = infercam.erased_inputs(inputs, left, [i % 2 == 1 for i in range(8)])
    for i in range(8):
        assert_close(inputs[i], infer_ref[f"masked_example__img_{i}"], atol=1e-6, rtol=0)
        assert_close(erased[i], infer_ref[f"masked_example__new_img_{i}"], atol=1e-6, rtol=0,
                     name=f"input {i}")


@needs_golden
@pytest.mark.parametrize("img_id, split", [("2007_000003", 3), ("2007_000002", 4)])
def test_refined_crop_cam_and_rounds_match_golden(split_ref, infer_ref, cls_net, img_id, split):
    """An 11-row wrapped crop of two classes (4 rounds, the last shrinking 0), and a crop that
    runs into the 5-round cap with CAM values within 1e-5 of the 0.7 threshold."""
    rgb = split_ref[f"{img_id}__split{split}_decoded_pil_rgb"]
    cam_matrix, shrinks = infercam.refine_crop_cam(cls_net, rgb, golden_label(split_ref, img_id))
    np.testing.assert_array_equal(shrinks, infer_ref[f"{img_id}__split{split}_cam_mask_diffs"])
    keys = infer_ref[f"{img_id}__cam_keys"]
    assert_close(cam_matrix[keys], infer_ref[f"{img_id}__split{split}_cam_matrix"],
                 atol=CAM_ATOL, rtol=0, name=f"split {split}")


@needs_golden
def test_seed_readme_commands_reproduce_golden_cams(split_ref, infer_ref, cls_net, tmp_path,
                                                    monkeypatch):
    """The InferCam README's two commands, verbatim (no other flag), run where the released
    code ran (its voc12/train.txt list beside them): the same crops, JPEG bytes and CAMs
    as the released code on all four golden images, wrapped crops and 3 classes included."""
    weights = tmp_path / "res38_cls.pth"
    save_checkpoint(weights, cls_net)
    (tmp_path / "voc12").mkdir()
    shutil.copy(GOLDEN / "dataset" / "list_psa.txt", tmp_path / "voc12" / "train.txt")
    monkeypatch.chdir(tmp_path)
    split, heat0, heat, out = "split", "heat_base", "heat_infercam", "out_cam"
    for folder in (split, heat0, heat, out):
        (tmp_path / folder).mkdir()
    split_img.main(["--weights", str(weights), "--voc12_root", str(GOLDEN / "dataset"),
                    "--split_path", split, "--heatmap", heat0])
    infer_cam.main(["--weights", str(weights), "--split_path", split, "--out_cam", out,
                    "--heatmap", heat])
    for img_id in IDS:
        record = json.loads((tmp_path / split / f"{img_id}.json").read_text())
        assert record["boxes"] == split_ref[f"{img_id}__split_slices"].tolist()
        assert record["mass_centers"] == split_ref[f"{img_id}__mass_centers"].tolist()
        for n in range(1, 5):
            name = f"{img_id}_{n}.jpg"
            assert (tmp_path / split / name).read_bytes() == \
                (GOLDEN / "dataset" / "infercam_splits" / name).read_bytes()
        cams = load_cam_dict(tmp_path / out / f"{img_id}.npy")
        assert list(cams) == infer_ref[f"{img_id}__cam_keys"].tolist()
        assert all(v.dtype == np.float32 for v in cams.values())
        assert_close(np.stack(list(cams.values())), infer_ref[f"{img_id}__cam"], atol=CAM_ATOL,
                     rtol=0, name=img_id)
    classes = sum(len(infer_ref[f"{i}__cam_keys"]) for i in IDS)
    assert len(list((tmp_path / heat0).glob("*.jpg"))) == classes
    assert len(list((tmp_path / heat).glob("*.jpg"))) == classes
    settings = json.loads((tmp_path / out / "settings.json").read_text())
    assert settings["stage"] == "infer_cam" and settings["max_rounds"] == 5
    assert settings["lossless_crops"] is False


class FirstChannel(torch.nn.Module):
    """A CAM that is the input's first channel (clamped at 0), for every class."""

    def forward_cam(self, x):
        return x[:, :1].repeat(1, NUM_CLASSES, 1, 1).clamp(min=0)


def one_class_label(c=0):
    return np.eye(NUM_CLASSES, dtype=np.float32)[c]


def test_rounds_stop_when_the_left_area_stops_shrinking():
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:, :12] = 255  # the bright half is activated, erased, and nothing else lights up
    cam_matrix, shrinks = infercam.refine_crop_cam(FirstChannel(), rgb, one_class_label())
    assert len(shrinks) == 2 and shrinks[1] == 0
    assert 0.45 < shrinks[0] < 0.55
    assert cam_matrix.dtype == np.float64 and cam_matrix.shape == (NUM_CLASSES, 16, 24)


def test_rounds_stop_at_the_cap_and_the_cam_only_grows():
    ramp = np.linspace(0, 255, 40).astype(np.uint8)  # every round activates a new band
    rgb = np.repeat(np.repeat(ramp[None, :, None], 12, 0), 3, 2)
    first, _ = infercam.refine_crop_cam(FirstChannel(), rgb, one_class_label(), max_rounds=1)
    cam_matrix, shrinks = infercam.refine_crop_cam(FirstChannel(), rgb, one_class_label(),
                                                   max_rounds=3)
    assert len(shrinks) == 3 and min(shrinks) >= infercam.MIN_SHRINK
    assert np.all(cam_matrix >= first) and np.any(cam_matrix > first)


def test_flip_mask_mirrors_the_mask_for_flipped_inputs():
    x = np.random.default_rng(0).standard_normal((3, 6, 8)).astype(np.float32)
    left = np.ones((6, 8), bool)
    left[:, :3] = False
    pair = [x, np.ascontiguousarray(x[:, :, ::-1])]
    mirrored = infercam.erased_inputs(pair, left, [False, True], flip_mask=True)
    np.testing.assert_allclose(mirrored[1], mirrored[0][:, :, ::-1], atol=1e-6)
    released = infercam.erased_inputs(pair, left, [False, True])
    assert np.array_equal(released[1][:, :, 3:], pair[1][:, :, 3:])  # erased at the left again
    assert not np.allclose(released[1], released[0][:, :, ::-1])


def test_chained_mask_resizing_loses_what_the_small_scale_dropped():
    left = np.ones((4, 4), bool)
    left[1, 1] = False  # not sampled by the 2x2 nearest resize
    sizes = [(4, 4), (2, 2), (6, 6)]
    chained = infercam.left_masks(left, sizes)
    direct = infercam.left_masks(left, sizes, chained=False)
    assert torch.all(chained[2] == 1) and torch.any(direct[2] == 0)
    assert torch.equal(chained[0], direct[0]) and torch.equal(chained[1], direct[1])


def test_clamped_boxes_start_inside_the_image():
    centers = np.array([[7, 33]])  # golden 2007_000001: the released start is -3
    released = infercam.split_boxes(centers, 56, 80)
    clamped = infercam.split_boxes(centers, 56, 80, clamp=True)
    image = np.zeros((56, 80))
    assert infercam.crop(image, released[2]).shape == (3, 43)
    assert infercam.crop(image, clamped[2]).shape == (56, 43)
    assert all(min(box) >= 0 for box in clamped)
    three_classes = np.array([[5, 5], [9, 9], [20, 30]])
    assert infercam.split_boxes(three_classes, 56, 80) == [(0, 56, 0, 80)] * 4


def test_all_zero_cam_splits_at_the_image_centre():
    assert infercam.mass_centers(np.zeros((20, 9, 14), np.float32), [4]).tolist() == [[4, 7]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("infercam_demo")
    make_demo_dataset(root, seed=3, num_train=2, num_val=1, min_size=72, max_size=88)
    torch.manual_seed(0)
    save_checkpoint(root / "cls.pth", resnet38_cls.Net(width=0.125))
    return root


def demo_args(demo, *extra):
    return ["--infer_list", str(demo / "train.txt"), "--voc12_root", str(demo), "--weights",
            str(demo / "cls.pth"), "--width", "0.125", "--device", "cpu", "--scales", "1.0", "0.5",
            *extra]


def test_scripts_end_to_end_on_demo_data(demo, tmp_path):
    split_dir, heat = tmp_path / "split", tmp_path / "heat"
    split_img.main(demo_args(demo, "--split_path", str(split_dir), "--out_cam",
                             str(tmp_path / "base_cam"), "--heatmap", str(tmp_path / "base_heat")))
    labels = load_cls_labels(demo / "cls_labels.npy")
    ids = read_image_list(demo / "train.txt")
    for img_id in ids:
        record = infercam.load_split_record(split_dir / f"{img_id}.json")
        rgb = read_image(demo / "JPEGImages" / f"{img_id}.jpg")
        assert record["image_size"] == rgb.shape[:2]
        for n, box in enumerate(record["boxes"], 1):
            crop = read_image(split_dir / f"{img_id}_{n}.jpg")
            assert crop.shape == infercam.crop(rgb, box).shape
    outs = {flags: tmp_path / f"cam{len(flags)}" for flags in ((), ("--lossless_crops",))}
    for flags, out in outs.items():  # each output folder holds one setting's results
        infer_cam.main(demo_args(demo, "--split_path", str(split_dir), *flags,
                                 "--out_cam", str(out), "--heatmap", str(heat / out.name)))
    for img_id in ids:
        classes = np.nonzero(labels[img_id])[0].tolist()
        shape = read_image(demo / "JPEGImages" / f"{img_id}.jpg").shape[:2]
        for out in outs.values():
            cams = load_cam_dict(out / f"{img_id}.npy", labels[img_id])
            assert list(cams) == classes
            for cam in cams.values():
                assert cam.shape == shape and cam.dtype == np.float32
                assert cam.min() >= 0 and cam.max() <= 1
    assert len(list((heat / "cam0").glob("*.jpg"))) == sum(len(np.nonzero(labels[i])[0])
                                                          for i in ids)
    lossless = outs[("--lossless_crops",)]
    stamp = os.path.getmtime(lossless / f"{ids[0]}.npy")
    infer_cam.main(demo_args(demo, "--split_path", str(split_dir), "--lossless_crops",
                             "--out_cam", str(lossless)))
    assert os.path.getmtime(lossless / f"{ids[0]}.npy") == stamp
    assert not [f for d in (split_dir, *outs.values()) for f in os.listdir(d) if ".tmp" in f]


def test_lossless_split_writes_no_jpeg_and_infer_cam_needs_the_images(demo, tmp_path):
    split_dir = tmp_path / "split"
    split_img.main(demo_args(demo, "--split_path", str(split_dir), "--lossless_crops"))
    assert not list(split_dir.glob("*.jpg")) and list(split_dir.glob("*.json"))
    with pytest.raises(SystemExit):
        infer_cam.main(["--weights", str(demo / "cls.pth"), "--infer_list",
                        str(demo / "train.txt"), "--split_path", str(split_dir),
                        "--lossless_crops", "--out_cam", str(tmp_path / "cam")])


def without_root(args):
    at = args.index("--voc12_root")
    return args[:at] + args[at + 2:]


def test_infer_cam_without_voc12_root_takes_labels_and_sizes_from_the_records(demo, tmp_path):
    split_dir = tmp_path / "split"
    split_img.main(demo_args(demo, "--split_path", str(split_dir)))
    with_root, without = tmp_path / "with_root", tmp_path / "without"
    infer_cam.main(demo_args(demo, "--split_path", str(split_dir), "--out_cam", str(with_root)))
    args = without_root(demo_args(demo, "--split_path", str(split_dir), "--out_cam",
                                  str(without)))
    infer_cam.main(args)
    for img_id in read_image_list(demo / "train.txt"):
        a, b = load_cam_dict(with_root / f"{img_id}.npy"), load_cam_dict(without / f"{img_id}.npy")
        assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)
    os.remove(split_dir / f"{img_id}.json")
    with pytest.raises(InputError, match=f"{img_id}.json: split record not found"):
        infer_cam.main(args + ["--overwrite"])


def test_image_without_a_labelled_class_is_skipped_by_both_steps(demo, tmp_path, capsys):
    """split_img.py records that it had no class for the image; infer_cam.py without
    --voc12_root (labels from the records) then skips and counts it, as every stage does,
    while a record missing for another reason still fails with one line naming it."""
    labelled, no_class = read_image_list(demo / "train.txt")
    labels = load_cls_labels(demo / "cls_labels.npy")
    labels[no_class] = np.zeros(NUM_CLASSES, np.float32)
    save_npy(tmp_path / "cls_labels.npy", labels)
    split_dir, cams = tmp_path / "split", tmp_path / "cam"
    split_argv = demo_args(demo, "--cls_labels", str(tmp_path / "cls_labels.npy"),
                           "--split_path", str(split_dir))
    capsys.readouterr()
    split_img.main(split_argv)
    assert "1 images split, 0 already done (2 listed, 1 without a labelled class skipped" in \
        capsys.readouterr().out
    record = json.loads((split_dir / f"{no_class}.json").read_text())
    assert record == {"num_classes": NUM_CLASSES, "classes": []}
    assert not list(split_dir.glob(f"{no_class}_*.jpg"))
    split_img.main(split_argv)  # a rerun has nothing left to do
    assert "0 images split, 1 already done (2 listed, 1 without a labelled class skipped" in \
        capsys.readouterr().out

    cam_argv = without_root(demo_args(demo, "--split_path", str(split_dir), "--out_cam",
                                      str(cams), "--max_rounds", "1"))
    infer_cam.main(cam_argv)
    assert "1 images computed, 0 already done (2 listed, 1 without a labelled class skipped)" in \
        capsys.readouterr().out
    assert sorted(os.listdir(cams)) == [f"{labelled}.npy", "settings.json"]

    # with labels that name a class for it, its record holds no crops to refine (the list
    # given last is the one argparse keeps)
    (tmp_path / "one.txt").write_text(f"{no_class}\n")
    one = demo_args(demo, "--infer_list", str(tmp_path / "one.txt"), "--split_path",
                    str(split_dir), "--out_cam", str(tmp_path / "cam_root"))
    code, lines = run_cli(infer_cam.main, one, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: {split_dir / no_class}.json: split_img.py had no "
                               "labelled class for this image")

    # a record that split_img.py never wrote
    os.remove(split_dir / f"{labelled}.json")
    code, lines = run_cli(infer_cam.main, cam_argv + ["--overwrite"], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: {split_dir / labelled}.json: split record not found")


def test_infer_cam_names_a_missing_crop(demo, tmp_path):
    with pytest.raises(InputError, match=r"_1\.jpg: image not found"):
        infer_cam.main(demo_args(demo, "--split_path", str(tmp_path), "--out_cam",
                                 str(tmp_path / "cam")))


def test_infer_cam_names_a_crop_too_small_for_the_scales(demo, tmp_path):
    img_id = read_image_list(demo / "train.txt")[0]
    h, w = read_image(demo / "JPEGImages" / f"{img_id}.jpg").shape[:2]
    boxes = [(0, h, 0, w)] * 3 + [(-1, h, 0, w)]  # a wrap that leaves one row
    infercam.save_split_record(tmp_path / f"{img_id}.json", (h, w), 20, [0], [[0, 0]], boxes,
                               False)
    with pytest.raises(InputError, match=f"{img_id}.json: crop 4 is 1x{w}.*--clamp_crops"):
        infer_cam.main(demo_args(demo, "--split_path", str(tmp_path), "--lossless_crops",
                                 "--out_cam", str(tmp_path / "cam")))


class CountingFirstChannel(FirstChannel):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward_cam(self, x):
        self.calls += 1
        return super().forward_cam(x)


def test_identical_crops_are_refined_once_with_the_same_result():
    rgb = np.random.default_rng(1).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    label = one_class_label()
    once, twice = CountingFirstChannel(), CountingFirstChannel()
    merged, shrinks = infercam.infer_cam(once, [rgb] * 4, label, rgb.shape[:2])
    single, single_shrinks = infercam.refine_crop_cam(twice, rgb, label)
    assert once.calls == twice.calls and shrinks == [single_shrinks]
    np.testing.assert_array_equal(merged, single)
    other = rgb.copy()
    other[0, 0] ^= 1
    _, shrinks = infercam.infer_cam(CountingFirstChannel(), [rgb, other, rgb, other], label,
                                    rgb.shape[:2])
    assert len(shrinks) == 2


class BatchRecorder(FirstChannel):
    """FirstChannel that records the batch size of every forward."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def forward_cam(self, x):
        self.batches.append(x.shape[0])
        return super().forward_cam(x)


def test_crops_refined_together_give_each_crop_its_own_result():
    """Batched rounds = per-crop rounds, bit for bit on a network whose output per input
    does not depend on the batch; equal-shape crops share one forward per scale while both
    run, and a stopped crop leaves the batch."""
    ramp = np.repeat(np.repeat(np.linspace(0, 255, 40).astype(np.uint8)[None, :, None], 12, 0),
                     3, 2)  # a new band lights up every round
    half = np.zeros((12, 40, 3), np.uint8)
    half[:, :20] = 255  # stops after 2 rounds
    other = np.random.default_rng(2).integers(0, 256, (10, 28, 3), dtype=np.uint8)
    crops, label = [ramp, half, other], one_class_label()
    together = BatchRecorder()
    results = infercam.refine_crop_cams(together, crops, label)
    for rgb, (cam, shrinks) in zip(crops, results):
        cam_alone, shrinks_alone = infercam.refine_crop_cam(FirstChannel(), rgb, label)
        assert shrinks == shrinks_alone
        np.testing.assert_array_equal(cam, cam_alone)
    rounds = [len(s) for _, s in results]
    assert rounds[0] > 2 and rounds[1] == 2  # half leaves the batch first
    scales, expected = len(infercam.CAM_SCALES), []
    for r in range(max(rounds)):
        shared = sum(rounds[k] > r for k in (0, 1))  # ramp and half have equal shapes
        expected += [2 * shared] * scales + [2] * scales * (rounds[2] > r)
    assert together.batches == expected


@pytest.fixture(scope="module")
def small_resnet():
    torch.manual_seed(0)
    net = resnet38_cls.Net(width=0.125).eval()
    for m in net.modules():  # a trunk whose residual branches are not zero
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=(2 / m.weight[0].numel()) ** 0.5 / 2)
    return net


def test_infer_cam_batched_rounds_match_crop_by_crop_on_a_resnet(small_resnet):
    """The same refined CAMs (within float32 noise of a different batch size, far inside
    the golden 5e-5) and the same rounds as refining the crops one after another."""
    rgb = np.random.default_rng(4).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    label = one_class_label(3) + one_class_label(7)
    centers = np.array([[20, 31], [26, 33]])  # symmetric: crops 1/2 and 3/4 share shapes
    crops = [infercam.crop(rgb, box) for box in infercam.split_boxes(centers, 48, 64)]
    merged, shrinks = infercam.infer_cam(small_resnet, crops, label, rgb.shape[:2])
    alone = [infercam.refine_crop_cam(small_resnet, c, label) for c in crops]
    assert shrinks == [s for _, s in alone]
    reference = infercam.merge_crop_cams([cam for cam, _ in alone], rgb.shape[:2])
    assert np.abs(merged - reference).max() < 1e-6


def test_split_img_reusing_infer_cls_cams_writes_identical_splits(demo, tmp_path):
    cam_dir, fresh, reused = tmp_path / "cam", tmp_path / "fresh", tmp_path / "reused"
    infer_cls.main(demo_args(demo, "--out_cam", str(cam_dir)))
    split_img.main(demo_args(demo, "--split_path", str(fresh)))
    split_img.main(demo_args(demo, "--split_path", str(reused), "--cam_dir", str(cam_dir)))
    ids = read_image_list(demo / "train.txt")
    for img_id in ids:
        assert (json.loads((reused / f"{img_id}.json").read_text())
                == json.loads((fresh / f"{img_id}.json").read_text()))
        for n in range(1, infercam.NUM_CROPS + 1):
            name = f"{img_id}_{n}.jpg"
            assert (reused / name).read_bytes() == (fresh / name).read_bytes()
    assert json.loads((reused / "settings.json").read_text())["cam_dir"] == str(cam_dir)
    one_scale = demo_args(demo, "--split_path", str(tmp_path / "x"), "--cam_dir", str(cam_dir))
    one_scale.remove("0.5")
    with pytest.raises(InputError, match=r"settings.json: CAMs made at scales \[1.0, 0.5\]"):
        split_img.main(one_scale)
    cams = load_cam_dict(cam_dir / f"{ids[0]}.npy")
    missing = sorted(cams)[0]
    save_npy(cam_dir / f"{ids[0]}.npy", {k: v for k, v in cams.items() if k != missing})
    with pytest.raises(InputError, match=f"{ids[0]}.npy: CAM dict lacks class {missing} of the image label"):
        split_img.main(demo_args(demo, "--split_path", str(reused), "--cam_dir", str(cam_dir),
                                 "--overwrite"))
