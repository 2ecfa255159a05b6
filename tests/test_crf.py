"""Dense CRFs against the original psa / AuxSegNet functions (golden case 5 and the la/ha
CRF of case 6a, the infer_AuxAff CRF of case 6d), plus the worker pool."""
import numpy as np
import pytest
from PIL import Image

from golden import GOLDEN, load_golden, needs_golden
from tool.seg import crf

CRF_ATOL = 1e-4  # golden README §5: CRF outputs
IDS = ("2007_000001", "2007_000002", "2007_000003", "2007_000004")


@needs_golden
@pytest.mark.parametrize("tag, probs, kwargs", [
    ("labels4", "scores4", dict(labels=4)),
    ("labels4_t5_sf2", "scores4", dict(t=5, scale_factor=2, labels=4)),
    ("labels21", "probs21", dict(labels=21)),
])
def test_crf_inference_matches_psa(tag, probs, kwargs):
    g = load_golden("fn_psa_imutils.npz")
    q = crf.crf_inference(g["img"], g[probs], **kwargs)
    assert q.dtype == np.float32
    np.testing.assert_allclose(q, g[f"crf_inference__{tag}"], rtol=0, atol=CRF_ATOL)


@needs_golden
@pytest.mark.parametrize("tag, kwargs", [("default", {}), ("t3_sf2", dict(t=3, scale_factor=2))])
def test_crf_inference_inf_matches_auxsegnet(tag, kwargs):
    g = load_golden("fn_auxsegnet_imutils.npz")
    q = crf.crf_inference_inf(g["img"], g["probs21"], **kwargs)
    np.testing.assert_allclose(q, g[f"crf_inference_inf__{tag}"], rtol=0, atol=CRF_ATOL)


@needs_golden
def test_crf_for_sal_matches_auxsegnet():
    g = load_golden("fn_auxsegnet_imutils.npz")
    q = crf.crf_for_sal(g["img"], g["anno"])
    assert q.shape == (1,) + g["anno"].shape
    np.testing.assert_allclose(q, g["crf_for_sal__default"], rtol=0, atol=CRF_ATOL)


@needs_golden
@pytest.mark.parametrize("img_id", IDS)
def test_bg_power_crf_matches_psa_infer_cls(img_id):
    g = load_golden("e2e_psa_infer_cls.npz")
    rgb = np.asarray(Image.open(GOLDEN / "dataset" / "JPEGImages" / f"{img_id}.jpg").convert("RGB"))
    cams = dict(zip(g[f"{img_id}__cam_keys"].tolist(), g[f"{img_id}__cam"]))
    for tag, alpha in (("la", 4), ("ha", 32)):
        out = crf.crf_with_bg_power(rgb, cams, alpha)
        assert list(out) == g[f"{img_id}__{tag}_crf_keys"].tolist()
        np.testing.assert_allclose(np.stack(list(out.values())), g[f"{img_id}__{tag}_crf"],
                                   rtol=0, atol=CRF_ATOL, err_msg=f"{img_id} {tag}")


def test_crf_inference_rejects_wrong_label_count():
    img = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(ValueError, match="labels=21"):
        crf.crf_inference(img, np.full((3, 4, 5), 1 / 3, np.float32))


def test_crf_keeps_a_confident_uniform_image_unchanged():
    img = np.full((6, 7, 3), 128, np.uint8)
    probs = np.zeros((2, 6, 7), np.float32)
    probs[1] = 0.9
    probs[0] = 0.1
    q = crf.crf_inference(img, probs, labels=2)
    np.testing.assert_allclose(q.sum(axis=0), 1, atol=1e-5)
    assert (q.argmax(axis=0) == 1).all()


@needs_golden
@pytest.mark.parametrize("img_id", IDS)
def test_crf_inference_inf_matches_infer_auxaff(img_id):
    g = load_golden("e2e_auxsegnet_infer.npz")
    rgb = load_golden("e2e_dataset.npz")[f"{img_id}__rgb_cv2"]
    q = crf.crf_inference_inf(rgb, g[f"{img_id}__prob"])
    np.testing.assert_allclose(q, g[f"{img_id}__crf_output"], rtol=0, atol=CRF_ATOL)
    np.testing.assert_array_equal(q.argmax(axis=0), g[f"crf__{img_id}__pred_png"])


def test_bg_power_crf_needs_a_class():
    with pytest.raises(ValueError, match="no class"):
        crf.crf_with_bg_power(np.zeros((4, 5, 3), np.uint8), {}, alpha=4)
