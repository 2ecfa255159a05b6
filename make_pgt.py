"""Initial segmentation pseudo labels for AuxSegNet: the heuristic fusion of classifier
CAMs (psa-format .npy dicts {class: HxW}) with an off-the-shelf saliency map
(8-bit PNG of the image's size), written as VOC-palette PNGs (0 background, c+1 class c,
255 not sure). AuxSegNet `fusion_cam`: object where saliency > 0.06 and max CAM > 0.2."""
import functools
import os

import numpy as np

from tool.auxsegnet.fusion import CAM_THRESHOLD, SAL_THRESHOLD, fuse_cam_saliency
from tool.core.cli import ArgumentParser, add_overwrite_arg, nonnegative_int, progress, run_main
from tool.core.io import (IGNORE_LABEL, InputError, cam_dict_to_array, claim_output_folders,
                          load_cam_dict, output_done, read_saliency, save_label_png)
from tool.core.workers import map_with_workers
from tool.data.classes import add_dataset_arg, labelled_images
from tool.data.voc import get_image_label, read_image_list


def build_parser():
    p = ArgumentParser(description=__doc__)
    p.add_argument("--list", required=True, help="image ids (bare or psa pair lines)")
    p.add_argument("--cam_dir", required=True, help="CAM dicts <id>.npy (infer_cls.py --out_cam)")
    p.add_argument("--sal_dir", required=True, help="saliency maps <id>.png, 8-bit, image size")
    p.add_argument("--cls_labels", required=True,
                   help="psa cls_labels.npy; CAMs are masked by each image's label, images "
                        "without a labelled class are skipped")
    add_dataset_arg(p, found_in="the image labels")
    p.add_argument("--out_dir", required=True, help="where <id>.png pseudo labels go")
    p.add_argument("--cam_threshold", type=float, default=CAM_THRESHOLD,
                   help="object needs max CAM above this (AuxSegNet fusion_cam: 0.2)")
    p.add_argument("--sal_threshold", type=float, default=SAL_THRESHOLD,
                   help="object needs saliency above this (AuxSegNet fusion_cam: 0.06)")
    p.add_argument("--workers", "--num_workers", dest="workers", type=nonnegative_int, default=1,
                   help="processes (0 or 1 = run inline)")
    add_overwrite_arg(p)
    return p


def cam_shape(cams, path):
    """The common (H, W) of a CAM dict's maps, or None for an empty dict."""
    shapes = {np.shape(v) for v in cams.values()}
    if len(shapes) > 1 or any(len(s) != 2 for s in shapes):
        raise InputError(f"{path}: CAM maps must all be HxW of one size, got {sorted(shapes)}")
    return shapes.pop() if shapes else None


def make_one(job, cam_dir, sal_dir, out_dir, cam_threshold, sal_threshold):
    """Fuse one image's CAMs and saliency, write the PNG; returns (object, ignore, total)
    pixel counts."""
    img_id, label = job
    cam_path = os.path.join(cam_dir, img_id + ".npy")
    cams = load_cam_dict(cam_path, label)
    shape = cam_shape(cams, cam_path)
    sal = read_saliency(os.path.join(sal_dir, img_id + ".png"), shape=shape)
    dense = cam_dict_to_array(cams, len(label), sal.shape)
    pgt = fuse_cam_saliency(dense, sal, label, cam_threshold, sal_threshold)
    save_label_png(os.path.join(out_dir, img_id + ".png"), pgt)
    ignore = pgt == IGNORE_LABEL
    return int(((pgt > 0) & ~ignore).sum()), int(ignore.sum()), pgt.size


def main(argv=None):
    args = build_parser().parse_args(argv)
    data = labelled_images(args, read_image_list(args.list), args.cls_labels)
    todo = [(i, get_image_label(data.labels, i, args.cls_labels)) for i in data.ids
            if not output_done(os.path.join(args.out_dir, i + ".png"), args.overwrite)]
    claim = claim_output_folders([("--out_dir", args.out_dir, {
        "stage": "make_pgt", "cam_dir": args.cam_dir, "sal_dir": args.sal_dir,
        "cls_labels": args.cls_labels, "num_classes": data.num_classes,
        "cam_threshold": args.cam_threshold,
        "sal_threshold": args.sal_threshold})], args.overwrite)
    fn = functools.partial(make_one, cam_dir=args.cam_dir, sal_dir=args.sal_dir,
                           out_dir=args.out_dir, cam_threshold=args.cam_threshold,
                           sal_threshold=args.sal_threshold)
    counts = np.zeros(3, np.int64)
    results = claim.recording(map_with_workers(fn, todo, args.workers))
    for c in progress(results, "make_pgt", total=len(todo)):
        counts += c
    total = max(int(counts[2]), 1)
    skipped = len(data.ids) - len(todo)
    print(f"make_pgt: wrote {len(todo)}, skipped {skipped} existing, {data.skipped} -> "
          f"{args.out_dir}; pixels {100 * counts[0] / total:.1f}% object, "
          f"{100 * counts[1] / total:.1f}% ignore")
    return {"written": len(todo), "skipped": skipped, "unlabelled": data.unlabelled,
            "object_pixels": int(counts[0]), "ignore_pixels": int(counts[1]),
            "pixels": int(counts[2])}


if __name__ == "__main__":
    run_main(main)
