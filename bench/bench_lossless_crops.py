"""What InferCam's JPEG round trip does to its CAMs: split_img.py + infer_cam.py as
released (crops re-encoded as JPEG and read back) against --lossless_crops on both (crops
cut from the image), with the full-width recipe classifier on the four golden images.
Prints, per image, the largest CAM difference and the share of CAM values that differ by
more than the golden CAM tolerance. Not part of `make bench` (several minutes on 2 cores).

    python bench/bench_lossless_crops.py
"""
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from common import golden, machine_text, recipe_net
from network import resnet38_cls
from tool.core.checkpoint import save_checkpoint
from tool.core.io import load_cam_dict
from tool.data.voc import read_image_list

GOLDEN_CAM_ATOL = 5e-5  # golden README §5, normalised CAMs


def infercam_cams(weights, root, image_list, out, lossless):
    """Run split_img.py then infer_cam.py (as the seed README does, or both with
    --lossless_crops) into `out`; returns the CAM folder."""
    import infer_cam
    import split_img
    common = ["--weights", str(weights), "--voc12_root", str(root), "--infer_list",
              str(image_list), "--device", "cpu", "--split_path", str(out / "split")]
    flag = ["--lossless_crops"] if lossless else []
    split_img.main(common + flag)
    infer_cam.main(common + flag + ["--out_cam", str(out / "cam")])
    return out / "cam"


def cam_difference(a_path, b_path):
    """(max |a - b|, share of values with |a - b| > GOLDEN_CAM_ATOL in %) of two CAM dicts
    with the same classes."""
    a, b = load_cam_dict(a_path), load_cam_dict(b_path)
    diff = np.abs(np.stack([a[c] for c in sorted(a)]) - np.stack([b[c] for c in sorted(b)]))
    return float(diff.max()), 100.0 * float((diff > GOLDEN_CAM_ATOL).mean())


def main():
    root = golden.GOLDEN / "dataset"
    image_list = root / "list_psa.txt"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = tmp / "recipe_cls.pth"
        save_checkpoint(weights, recipe_net(resnet38_cls.Net))
        jpeg = infercam_cams(weights, root, image_list, tmp / "jpeg", lossless=False)
        lossless = infercam_cams(weights, root, image_list, tmp / "lossless", lossless=True)
        print(machine_text())
        print("| image | max abs CAM difference | values off by > 5e-5 |\n| --- | --- | --- |")
        for img_id in read_image_list(image_list):
            largest, share = cam_difference(jpeg / f"{img_id}.npy", lossless / f"{img_id}.npy")
            print(f"| {img_id} | {largest:.3f} | {share:.1f} % |")


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
