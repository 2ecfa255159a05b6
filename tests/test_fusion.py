"""AuxSegNet heuristic CAM + saliency fusion (golden case 5 `fusion_cam`, and the
gen_pgt.py chain of case 6d)."""
import numpy as np
import pytest

from golden import load_golden, needs_golden
from tool.auxsegnet.fusion import fuse_cam_saliency
from tool.seg.crf import crf_for_sal


@needs_golden
@pytest.mark.parametrize("batch", [0, 1])
def test_fusion_matches_auxsegnet_exactly(batch):
    g = load_golden("fn_auxsegnet_imutils.npz")
    out = fuse_cam_saliency(g["cam"][batch], g["sal"][batch], g["label"][batch])
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, g["fusion_cam__gt"][batch])


def test_fusion_rules_on_four_pixels():
    cams = np.zeros((20, 1, 4), np.float32)
    cams[3] = [0.9, 0.9, 0.1, 0.1]
    cams[5] = [0.5, 0.5, 0.0, 0.0]
    sal = np.array([[0.5, 0.0, 0.5, 0.0]])
    label = np.zeros(20, np.float32)
    label[[3, 5]] = 1
    # salient+class, class only, salient only, neither
    np.testing.assert_array_equal(fuse_cam_saliency(cams, sal, label), [[4, 255, 255, 0]])


def test_fusion_ignores_classes_not_in_label():
    cams = np.zeros((20, 2, 2), np.float32)
    cams[7] = 0.9
    cams[2] = 0.3
    sal = np.ones((2, 2))
    label = np.zeros(20, np.float32)
    label[2] = 1
    assert (fuse_cam_saliency(cams, sal, label) == 3).all()
    label[2] = 0
    assert (fuse_cam_saliency(cams, sal, label) == 255).all()


def test_fusion_thresholds_are_strict_and_configurable():
    cams = np.zeros((20, 1, 1), np.float64)
    cams[0] = 0.2
    label = np.ones(20, np.float32)
    assert fuse_cam_saliency(cams, np.array([[0.06]]), label)[0, 0] == 0
    assert fuse_cam_saliency(cams, np.array([[0.5]]), label, cam_threshold=0.1)[0, 0] == 1


@needs_golden
@pytest.mark.parametrize("img_id", ["2007_000001", "2007_000002", "2007_000003", "2007_000004"])
def test_gen_pgt_saliency_crf_then_fusion_matches_auxsegnet(img_id):
    """gen_pgt.py steps 6 and 8: saliency CRF of the fused saliency, then the fusion."""
    g = load_golden("e2e_auxsegnet_gen_pgt.npz")
    data = load_golden("e2e_dataset.npz")
    sal = crf_for_sal(data[f"{img_id}__rgb_cv2"], g[f"{img_id}__fused_sal_pre_crf"])
    np.testing.assert_allclose(sal, g[f"{img_id}__fused_sal_post_crf"], rtol=0, atol=1e-4)
    pgt = fuse_cam_saliency(g[f"{img_id}__refined_cam_up"], sal, data[f"{img_id}__label"])
    np.testing.assert_array_equal(pgt, g[f"{img_id}__pgt"])


def test_fusion_of_80_class_cams():
    """COCO: an (80, H, W) CAM stack and an 80-dim label give labels up to 80."""
    cams = np.zeros((80, 1, 4), np.float32)
    cams[79] = [0.9, 0.1, 0.0, 0.0]
    cams[45] = [0.5, 0.6, 0.0, 0.9]
    label = np.zeros(80, np.float32)
    label[[45, 79]] = 1
    sal = np.array([[0.5, 0.5, 0.5, 0.5]])
    np.testing.assert_array_equal(fuse_cam_saliency(cams, sal, label), [[80, 46, 255, 46]])
    label[45] = 0
    np.testing.assert_array_equal(fuse_cam_saliency(cams, sal, label), [[80, 255, 255, 255]])
