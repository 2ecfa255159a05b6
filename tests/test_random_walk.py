"""Pair indices (golden case 5) and the random walk of psa infer_aff.py (golden case 6b):
the faithful dense walk and the default sparse one against the original's outputs."""
import numpy as np
import pytest
import torch
from PIL import Image

from golden import GOLDEN, assert_close, load_golden, needs_golden
from network import pairs
from test_resnet38_aff import recipe_aff_net
from tool.psa import random_walk as rw
from tool.psa.random_walk import cpu_threads

IDS = ["2007_000001", "2007_000002", "2007_000003", "2007_000004"]
RUNS = {"default": (16, 8, 8), "strongwalk": (8, 1, 5)}  # (alpha, beta, logt)
AFF_TOL = dict(atol=1e-6, rtol=1e-4)  # golden README §5, affinities / trans_mat
UNSURE_MARGIN = 1e-4  # golden README §5: label flips allowed only below this top-2 margin


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Single-threaded: on shared cores thread hand-offs cost more than they save."""
    with cpu_threads(1):
        yield


@needs_golden
@pytest.mark.parametrize("case", ["r5_8x9", "r5_10x13", "r3_5x7"])
def test_indices_of_pairs(case):
    g = load_golden("fn_psa_indices.npz")
    radius = int(case[1])
    size = tuple(int(n) for n in case.split("_")[1].split("x"))
    ind_from, ind_to = pairs.get_indices_of_pairs(radius, size)
    assert np.array_equal(ind_from, g[f"{case}__ind_from"])
    assert np.array_equal(ind_to, g[f"{case}__ind_to"])


@needs_golden
@pytest.mark.parametrize("case,args", [("8x9_r5", (8, 9, 5)), ("6x7_r3", (6, 7, 3))])
def test_indices_in_radius(case, args):
    g = load_golden("fn_psa_indices.npz")
    assert np.array_equal(pairs.get_indices_in_radius(*args),
                          g[f"infer_aff_get_indices_in_radius__{case}"])


def test_radius5_has_34_directions_in_half_plane():
    dirs = pairs.search_directions(5)
    assert len(dirs) == 34 and len(set(dirs)) == 34
    assert all(dy > 0 or (dy == 0 and dx > 0) for dy, dx in dirs)


@pytest.mark.parametrize("size", [(4, 20), (10, 8)])
def test_too_small_map_raises(size):
    with pytest.raises(ValueError, match="feature map at least 5 high and 9 wide"):
        pairs.get_indices_of_pairs(5, size)


def random_affinities(feat_size, seed, low=0.3):
    ind_from, ind_to = pairs.get_indices_of_pairs(pairs.PAIR_RADIUS, feat_size)
    gen = torch.Generator().manual_seed(seed)
    return low + (1 - low) * torch.rand(ind_to.size // ind_from.size, ind_from.size, generator=gen)


@pytest.mark.parametrize("beta,logt", [(1, 5), (8, 8), (2, 3)])
def test_sparse_walk_equals_dense_walk(beta, logt):
    feat_size = (9, 13)
    aff = random_affinities(feat_size, seed=beta)
    cam_vec = torch.zeros(21, 9 * 13)
    cam_vec[[0, 5, 12]] = torch.rand(3, 9 * 13, generator=torch.Generator().manual_seed(1))
    dense = rw.random_walk(cam_vec, aff, feat_size, beta, logt, method="dense")
    sparse = rw.random_walk(cam_vec, aff, feat_size, beta, logt, method="sparse")
    assert_close(sparse, dense, atol=1e-5, rtol=1e-4, name="walk")
    assert torch.all(sparse[[1, 2, 20]] == 0)
    moved = (dense - cam_vec).abs().max()
    assert moved > 1e-3  # the walk did change the scores


def test_walk_preserves_column_mass_and_constants():
    feat_size = (6, 11)
    aff = random_affinities(feat_size, seed=3)
    ones = torch.ones(2, 66)
    walked = rw.random_walk(ones, aff, feat_size, beta=1, logt=4)
    assert_close(walked, ones, atol=1e-6, rtol=0, name="constant vector is a fixed point")


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="method must be one of"):
        rw.random_walk(torch.ones(1, 45), torch.ones(34, 1), (5, 9), method="fast")


def test_scores_background_before_padding():
    cams = {2: np.full((10, 12), 0.5, np.float32)}
    scores = rw.rw_scores(cams, (10, 12), alpha=2)
    assert scores.shape == (21, 10, 12)
    assert np.allclose(scores[0], 0.25) and np.allclose(scores[3], 0.5)
    cam_vec = rw.cam_vector(scores)
    assert cam_vec.shape == (21, 4)  # padded 16x16 -> 2x2
    assert np.isclose(float(cam_vec[0, 0]), 0.25)  # fully inside the image
    assert np.isclose(float(cam_vec[0, 3]), 0.25 * 2 * 4 / 64)  # 2x4 pixels + padding


@pytest.fixture(scope="module")
def golden_walk():
    if not GOLDEN.is_dir():
        pytest.skip(f"golden data folder {GOLDEN} is absent")
    g_aff = load_golden("e2e_psa_infer_aff.npz")
    g_cls = load_golden("e2e_psa_infer_cls.npz")
    net = recipe_aff_net()
    out = {}
    for img_id in IDS:
        rgb = np.asarray(Image.open(GOLDEN / "dataset" / "JPEGImages" / f"{img_id}.jpg")
                         .convert("RGB"))
        x = rw.padded_input(rgb)
        with torch.inference_mode():
            aff = net(x)[0]
        cams = dict(zip(g_cls[f"{img_id}__cam_keys"].tolist(), g_cls[f"{img_id}__cam"]))
        out[img_id] = dict(rgb=rgb, x=x, aff=aff, cams=cams)
    return g_aff, out


@needs_golden
@pytest.mark.parametrize("run", list(RUNS))
@pytest.mark.parametrize("img_id", IDS)
def test_infer_aff_matches_original(golden_walk, run, img_id):
    g, cases = golden_walk
    case = cases[img_id]
    alpha, beta, logt = RUNS[run]
    shape = case["rgb"].shape[:2]
    feat_size = (case["x"].shape[2] // 8, case["x"].shape[3] // 8)
    key = f"{run}__{img_id}"
    assert_close(case["x"].numpy(), g[f"{img_id}__input_padded"], atol=1e-6, rtol=0,
                 name="input")
    assert_close(pairs.dense_affinity(case["aff"], feat_size).numpy(), g[f"{img_id}__aff_dense"],
                 name="aff_dense", **AFF_TOL)
    cam_vec = rw.cam_vector(rw.rw_scores(case["cams"], shape, alpha))
    assert_close(cam_vec.numpy(), g[f"{key}__cam_vec"], atol=1e-6, rtol=1e-5, name="cam_vec")
    dense_aff = pairs.dense_affinity(case["aff"], feat_size)
    assert_close(rw.transition_power_dense(dense_aff, beta, logt).numpy(),
                 g[f"{key}__trans_mat"], name="trans_mat", **AFF_TOL)
    ref_lowres = g[f"{key}__cam_rw_lowres"].reshape(21, -1)
    ref_label = g[f"{key}__rw_label"]
    for method in rw.METHODS:
        cam_rw = rw.random_walk(cam_vec, case["aff"], feat_size, beta, logt, method)
        assert_close(cam_rw.numpy(), ref_lowres, atol=1e-6, rtol=1e-4, name=f"{method} cam_rw")
        scores = rw.upsampled_scores(cam_rw, shape).numpy()
        label = scores.argmax(axis=0)
        top2 = np.sort(scores, axis=0)[-2:]
        unsure = top2[1] - top2[0] < UNSURE_MARGIN
        wrong = (label != ref_label) & ~unsure
        assert not wrong.any(), f"{method}: {int(wrong.sum())} pixels differ"
        assert unsure.mean() < 0.01


def test_scaled_walk_returns_scores_at_the_image_size():
    """--scale 2 walks on a resized image and CAMs but answers at the original size; with
    a near-identity transition (beta 50 on an untrained net's affinities, one step) the
    labels follow the CAM."""
    from network import resnet38_aff
    torch.manual_seed(0)
    net = resnet38_aff.Net(width=0.125).eval()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 72, 3), dtype=np.uint8)
    cam = np.zeros((40, 72), np.float32)
    cam[10:30, 20:50] = 1.0
    scores = rw.random_walk_scores(net, rgb, {4: cam}, alpha=4, beta=50, logt=0, scale=2.0)
    assert tuple(scores.shape) == (rw.NUM_CLASSES + 1, 40, 72)
    big = rw.scaled_walk_inputs(rgb, {4: cam}, 2.0)
    assert big[0].shape == (80, 144, 3) and big[1][4].shape == (80, 144)
    label = scores.argmax(dim=0).numpy()
    assert (label[15:25, 28:42] == 5).all() and (label[:4, :] == 0).all()


@pytest.mark.parametrize("feat_size", [(6, 11), (9, 13), (6, 11)])
def test_cached_sparse_transition_is_the_dense_transition_transposed(feat_size):
    """The CSR built from the cached pattern (per size; (6, 11) twice: from the cache) holds
    exactly psa's T = A^beta / column sums, transposed."""
    aff = random_affinities(feat_size, seed=5).double()
    sparse = rw.sparse_transition_t(aff, feat_size, beta=3).to_dense()
    dense = rw.transition_power_dense(pairs.dense_affinity(aff, feat_size), beta=3, logt=0)
    torch.testing.assert_close(sparse, dense.T, rtol=1e-12, atol=1e-15)


def test_an_80_class_cam_dict_walks_to_coco_labels():
    """COCO: CAM keys up to 79 become scores 1..80 and labels 1..80 (sparse = dense)."""
    from network import resnet38_aff
    shape = (40, 72)
    near, far = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    near[4:20, 4:30] = 1.0
    far[20:36, 40:70] = 0.8
    cams = {50: near, 79: far}
    scores = rw.rw_scores(cams, shape, alpha=4, num_classes=80)
    assert scores.shape == (81,) + shape
    np.testing.assert_array_equal(scores[51], near)
    np.testing.assert_array_equal(scores[80], far)
    np.testing.assert_allclose(scores[0], (1 - np.maximum(near, far)) ** 4)
    assert not scores[np.r_[1:51, 52:80]].any()

    torch.manual_seed(0)
    net = resnet38_aff.Net(width=0.125).eval()
    rgb = np.random.default_rng(0).integers(0, 256, shape + (3,), dtype=np.uint8)
    labels = [rw.random_walk_label(net, rgb, cams, alpha=4, beta=50, logt=1, method=m,
                                   num_classes=80) for m in rw.METHODS]
    np.testing.assert_array_equal(labels[0], labels[1])
    label = labels[0]
    assert set(np.unique(label)) == {0, 51, 80}
    assert (label[8:16, 8:26] == 51).all() and (label[24:32, 44:66] == 80).all()
    assert (label[:, 32:38] == 0).all()
