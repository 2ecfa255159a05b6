"""The trainers' augmentation against the batches the original code fed its network
(golden README §8: train_auxaff.npz, train_aff.npz, train_cls.npz), on the golden dataset.

- AuxSegNet: meta.aug records each image's draws (scale, flip, crop offsets h_p / w_p);
  tool.auxsegnet.training.apply_augment with those draws gives the recorded image, segmentation
  label and binarised saliency.
- AffinityNet: the draws were not recorded (meta.aug holds only the ids) and the colour
  jitter was an identity. The crop offset and the flip are found by trying every one with
  tool.psa.aff_labels.apply_joint_augment (exactly one reproduces the recorded image); with
  them the project's 1/8 label (crf_label) and pair labels (affinity_pair_labels) from the
  original's la/ha CRF dicts are the recorded ones.
- Classifier: no draws recorded either (flip and jitter were identities). The long side in
  psa's [256, 512] and the crop window are found the same way: exactly one of them gives
  the recorded image through tool.data.cls_data.ClassifierAugment.apply.

Image tolerance 1e-6 x max|ref|: the originals resize (AuxSegNet) or normalise
(AffinityNet) in other float precisions than the project (measured 1.5e-7)."""
import numpy as np
import pytest

from golden import GOLDEN, golden_meta, load_golden, needs_golden
from network.resnet38d import IMAGE_MEAN, IMAGE_STD, normalize_image
from tool.auxsegnet import training
from tool.core.io import IGNORE_LABEL, read_image, save_label_png, save_npy
from tool.data import transforms
from tool.data.cls_data import RESIZE_LONG, ClassifierAugment, ClassifierDraws
from tool.data.voc import load_cls_labels, read_seg_sample
from tool.psa import aff_labels

pytestmark = needs_golden
DATASET = GOLDEN / "dataset"
IMAGE_ATOL = 1e-6  # x max|ref|


def recorded_images(meta):
    """(step, index in batch, image id) of every image the recorded steps used, with the
    ids in batch order (meta.img_names, or meta.aug when img_names was not recorded)."""
    ids = [a["id"] for a in meta["aug"]] or [i for batch in meta["img_names"] for i in batch]
    return [(*divmod(n, meta["batch"]), img_id) for n, img_id in enumerate(ids)]


def assert_image_close(ours, ref, what):
    assert ours.shape == ref.shape, what
    assert np.abs(ours - ref).max() <= IMAGE_ATOL * np.abs(ref).max(), what


@pytest.fixture(scope="module")
def aux_seg_dir(tmp_path_factory):
    """The segmentation pseudo labels the recorded run trained on, as label PNGs."""
    folder = tmp_path_factory.mktemp("aux_seg_pgt")
    pgt = load_golden("e2e_auxsegnet_gen_pgt.npz")
    for img_id in (DATASET / "list_ids.txt").read_text().split():
        save_label_png(folder / f"{img_id}.png", pgt[f"{img_id}__seg_pgt_png"])
    return folder


def test_auxsegnet_augmentation_replays_the_recorded_batches(aux_seg_dir):
    z = load_golden("train_auxaff.npz")
    meta = golden_meta(z)
    labels = load_cls_labels(DATASET / "cls_labels.npy")
    assert len(meta["aug"]) == meta["n_steps"] * meta["batch"]
    for (step, b, img_id), aug in zip(recorded_images(meta), meta["aug"]):
        assert meta["img_names"][step][b] == img_id
        sample = read_seg_sample(img_id, DATASET / "JPEGImages", aux_seg_dir, DATASET / "SAL")
        width, height = transforms.truncated_scaled_wh(*sample["rgb"].shape[:2], aug["scale"])
        assert [height, width] == aug["scaled_hw"], img_id
        draws = training.AugmentDraws(aug["flip"], (aug["h_p"], aug["w_p"]))
        img, seg, sal = training.apply_augment(sample["rgb"], sample["seg"], sample["sal"],
                                                aug["scale"], draws, meta["crop"])
        prefix, what = f"step{step}__", f"step {step} image {b} ({img_id})"
        assert_image_close(img, z[prefix + "images"][b], what)
        np.testing.assert_array_equal(seg, z[prefix + "seg_labels"][b], err_msg=what)
        np.testing.assert_array_equal(sal, z[prefix + "sal_images"][b], err_msg=what)
        np.testing.assert_array_equal(labels[img_id], z[prefix + "label"][b], err_msg=what)


@pytest.fixture(scope="module")
def psa_crf_dirs(tmp_path_factory):
    """The la / ha CRF dicts the recorded AffinityNet run read (e2e_psa_infer_cls.npz)."""
    root = tmp_path_factory.mktemp("psa_crf")
    cams = load_golden("e2e_psa_infer_cls.npz")
    for img_id in (DATASET / "list_ids.txt").read_text().split():
        for which in ("la", "ha"):
            keys, maps = cams[f"{img_id}__{which}_crf_keys"], cams[f"{img_id}__{which}_crf"]
            save_npy(root / which / f"{img_id}.npy", {int(k): m for k, m in zip(keys, maps)})
    return root


def matching_joint_draws(rgb, scores, crop_size, ref):
    """Every (draws, scores crop) of apply_joint_augment without jitter whose image is
    `ref`: all placements of the (smaller) image in the crop, flipped or not."""
    h, w = rgb.shape[:2]
    found = []
    for top in range(crop_size - h + 1):
        for left in range(crop_size - w + 1):
            for flip in (False, True):
                draws = aff_labels.JointDraws(None, (top, left), flip)
                img, crop = aff_labels.apply_joint_augment(rgb, scores, crop_size, draws)
                if np.abs(img - ref).max() <= IMAGE_ATOL * np.abs(ref).max():
                    found.append((draws, crop))
    return found


def test_affinity_augmentation_and_labels_replay_the_recorded_batches(psa_crf_dirs):
    z = load_golden("train_aff.npz")
    meta = golden_meta(z)
    assert len(meta["aug"]) == meta["n_steps"] * meta["batch"]
    for n, (step, b, img_id) in enumerate(recorded_images(meta)):
        rgb = read_image(DATASET / "JPEGImages" / f"{img_id}.jpg")
        assert max(rgb.shape[:2]) < meta["crop"]  # the whole image is placed in the crop
        scores, keys = aff_labels.crf_scores(psa_crf_dirs / "la" / f"{img_id}.npy",
                                             psa_crf_dirs / "ha" / f"{img_id}.npy",
                                             rgb.shape[:2])
        prefix, what = f"step{step}__", f"step {step} image {b} ({img_id})"
        found = matching_joint_draws(rgb, scores, meta["crop"], z[prefix + "images"][b])
        assert len(found) == 1, (what, [d for d, _ in found])
        label = aff_labels.crf_label(found[0][1], keys)
        # psa's label holds the index into the dict's keys; the project's the key itself
        as_index = np.where(label == IGNORE_LABEL, IGNORE_LABEL,
                            np.searchsorted(keys, label)).astype(np.uint8)
        np.testing.assert_array_equal(as_index, z[f"aug{n}__label_1_8"], err_msg=what)
        pairs = aff_labels.affinity_pair_labels(label)
        for kind, ours in zip(("bg_label", "fg_label", "neg_label"), pairs):
            np.testing.assert_array_equal(ours, z[prefix + kind][b], err_msg=f"{what} {kind}")


def normalised_to_uint8(image_chw):
    """The uint8 RGB (H, W, 3) that normalize_image() maps to `image_chw`."""
    rgb = (image_chw.transpose(1, 2, 0) * np.array(IMAGE_STD) + np.array(IMAGE_MEAN)) * 255
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def matching_long_side_crops(rgb, target, crop_size, resize_long):
    """Every (long side, top, left) whose resize_long + crop window is `target` (uint8)."""
    found = []
    for long_side in range(resize_long[0], resize_long[1] + 1):
        resized = transforms.resize_long(rgb, long_side)
        h, w = resized.shape[:2]
        starts = np.argwhere((resized[:h - crop_size + 1, :w - crop_size + 1]
                              == target[0, 0]).all(axis=-1))
        found += [(long_side, int(top), int(left)) for top, left in starts
                  if np.array_equal(resized[top:top + crop_size, left:left + crop_size], target)]
    return found


def test_classifier_augmentation_reproduces_the_recorded_batches():
    z = load_golden("train_cls.npz")
    meta = golden_meta(z)
    assert meta["aug"] == []  # no recorded draws: they are searched for
    labels = load_cls_labels(DATASET / "cls_labels.npy")
    augment = ClassifierAugment(meta["crop"], RESIZE_LONG)
    for step, b, img_id in recorded_images(meta):
        prefix, what = f"step{step}__", f"step {step} image {b} ({img_id})"
        ref = z[prefix + "images"][b]
        target = normalised_to_uint8(ref)
        np.testing.assert_array_equal(normalize_image(target), ref, err_msg=what)
        rgb = read_image(DATASET / "JPEGImages" / f"{img_id}.jpg")
        found = matching_long_side_crops(rgb, target, meta["crop"], RESIZE_LONG)
        assert len(found) == 1, (what, found)
        long_side, top, left = found[0]
        draws = ClassifierDraws(long_side, flip=False, jitter=None, offsets=(top, left))
        np.testing.assert_array_equal(augment.apply(rgb, draws), ref, err_msg=what)
        np.testing.assert_array_equal(labels[img_id], z[prefix + "label"][b], err_msg=what)
