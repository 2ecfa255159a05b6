"""AuxSegNet training pieces: the batch plan, the augmentation and the five-term loss."""
import numpy as np
import pytest
import torch

from network.resnet38d import normalize_image
from tool.auxsegnet import training


def test_epoch_batches_share_one_scale_and_cover_the_epoch():
    batches = training.epoch_batches(11, 4, epoch=0, seed=3)
    assert len(batches) == 2 and all(len(b) == 4 for b in batches)
    indices = [i for b in batches for i, _, _ in b]
    assert len(set(indices)) == 8 and set(indices) <= set(range(11))
    for batch in batches:
        scales = {s for _, s, _ in batch}
        assert len(scales) == 1 and 0.7 <= scales.pop() <= 1.3
    assert batches == training.epoch_batches(11, 4, epoch=0, seed=3)
    assert batches != training.epoch_batches(11, 4, epoch=1, seed=3)


def test_ranks_split_every_batch():
    whole = training.epoch_batches(12, 4, epoch=2)
    parts = [training.epoch_batches(12, 4, epoch=2, rank=r, world_size=2) for r in (0, 1)]
    for b, (p0, p1) in enumerate(zip(*parts)):
        assert sorted(p0 + p1) == sorted(whole[b]) and len(p0) == len(p1) == 2


def test_batch_plan_resumes_mid_run():
    full = list(training.BatchPlan(10, 4, 0, 7))
    assert len(full) == 7
    assert list(training.BatchPlan(10, 4, 3, 7)) == full[3:]
    assert full[2] == training.epoch_batches(10, 4, epoch=1)[0]  # 2 batches per epoch


def _toy_sample():
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, 15:] = 200  # right half bright
    seg = np.zeros((20, 30), np.uint8)
    seg[:, 15:] = 7
    sal = np.zeros((20, 30))
    sal[:, 15:] = 0.8
    sal[:, 10:15] = 0.4
    return rgb, seg, sal


@pytest.mark.parametrize("pad", [0, 255])
def test_augment_pads_at_top_left_and_binarises_saliency(pad):
    rgb, seg, sal = _toy_sample()
    flipped = set()
    for seed in range(8):
        img, lab, bin_sal = training.augment(rgb, seg, sal, 1.0, np.random.default_rng(seed),
                                              32, label_pad=pad)
        assert img.shape == (3, 32, 32) and lab.shape == bin_sal.shape == (32, 32)
        assert np.all(img[:, 20:] == 0) and np.all(img[:, :, 30:] == 0)
        assert np.all(lab[20:] == pad) and np.all(lab[:, 30:] == pad)
        assert set(np.unique(bin_sal)) <= {0.0, 1.0} and np.all(bin_sal[20:] == 0)
        bright = img[0, :20, :30] > 0
        np.testing.assert_array_equal(bright, lab[:20, :30] == 7)  # flipped together
        np.testing.assert_array_equal(bright, bin_sal[:20, :30] == 1)
        flipped.add(not bright[0, -1])
        expected = normalize_image(rgb)[:, :, ::-1] if not bright[0, -1] else normalize_image(rgb)
        np.testing.assert_allclose(img[:, :20, :30], expected, atol=1e-5)
    assert flipped == {True, False}


def test_loss_is_the_weighted_sum_of_five_terms():
    torch.manual_seed(0)
    outputs = (torch.randn(2, 20), torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4),
               torch.randn(2, 21, 4, 4), torch.randn(2, 21, 4, 4))
    seg = torch.randint(0, 21, (2, 16, 16))
    seg[0, :4] = 255
    batch = {"seg": seg, "sal": (torch.rand(2, 16, 16) > 0.5).float(),
             "label": (torch.rand(2, 20) > 0.7).float()}
    total, terms = training.training_loss(outputs, batch)
    assert total.item() == pytest.approx(sum(terms.values()), rel=1e-6)
    weighted, _ = training.training_loss(outputs, batch, training.LossWeights(2.0, 0.0, 1.0))
    expected = 2 * terms["cls"] + terms["init_seg"] + terms["refined_seg"]
    assert weighted.item() == pytest.approx(expected, rel=1e-6)
    assert all(v > 0 for v in terms.values())
