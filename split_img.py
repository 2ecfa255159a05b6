"""InferCam step 1 (InferCam `split_img.py`): the baseline multi-scale CAM of each image,
the mass centre of every labelled class and the four overlapping corner crops around them.

Writes per image the four crops as the released code did (`<split_path>/<id>_1.jpg` ..
`<id>_4.jpg`, OpenCV JPEG quality 95, which infer_cam.py reads back) and `<id>.json` (image
size, classes, mass centres, and the four crop boxes (r0, r1, c0, c1) as the numpy slices
used). A listed image whose label names no class is not split: its `<id>.json` holds only
the class count and no classes, so that infer_cam.py without --voc12_root skips it too.
--lossless_crops writes the boxes only: infer_cam.py --lossless_crops then cuts the crops
from the original image, without the JPEG round trip. --out_cam writes the baseline CAM
dicts, --heatmap per-class CAM overlays. --cam_dir reuses the CAM dicts infer_cls.py
already wrote (same scales: the same maps) instead of computing them again.

    python split_img.py --weights res38_cls.pth --voc12_root VOC2012 --split_path splits \\
        --heatmap heat_base          # --infer_list: released default voc12/train.txt
"""
import os

from tool.cam import infercam
from tool.cam import multiscale as camlib
from tool.cam.classifier import (add_classifier_args, add_environment_args, heatmap_paths,
                                 load_classifier, save_class_heatmaps)
from tool.core.cli import progress, resolve_device, run_main, script_parser
from tool.core.io import (SETTINGS_FILE, InputError, claim_output_folders, load_cam_dict, load_json,
                          output_done, read_image, save_npy)
from tool.data.classes import class_names, labelled_images
from tool.data.voc import add_infer_data_args, find_image, get_image_label, infer_data


def build_parser():
    p = script_parser(__doc__)
    add_infer_data_args(p.add_argument_group("data"), list_default=infercam.RELEASED_INFER_LIST)
    add_classifier_args(p.add_argument_group("model"), "InferCam split_img.py")
    split = p.add_argument_group("split")
    split.add_argument("--cam_dir", default=None,
                       help="CAM dicts <id>.npy of infer_cls.py (same --scales) to split by, "
                            "instead of computing the multi-scale CAM again (not in the "
                            "released code; identical splits)")
    split.add_argument("--clamp_crops", action="store_true",
                       help="start a crop that would begin above or left of the image at 0; the "
                            "released code keeps the negative start, which numpy wraps around "
                            "(the crop is then only the last rows/columns)")
    out = p.add_argument_group("outputs")
    out.add_argument("--split_path", required=True,
                     help="folder for the crops <id>_1..4.jpg and the crop boxes <id>.json")
    out.add_argument("--lossless_crops", action="store_true",
                     help="write the crop boxes only, no JPEG crops (for infer_cam.py "
                          "--lossless_crops); the released code writes JPEG crops, quality 95")
    out.add_argument("--out_cam", default=None, help="baseline CAM dicts {class: HxW} as .npy")
    out.add_argument("--heatmap", default=None, help="per-class CAM overlays <id>_<class>.jpg")
    out.add_argument("--overwrite", action="store_true", help="redo images already written")
    add_environment_args(p.add_argument_group("environment"))
    return p


def classifier_data(args):
    """(the listed images with a labelled class (`labelled_images`), the listed ids
    without one, the image folder, the class names)."""
    listed, img_dir, labels_path = infer_data(args)
    data = labelled_images(args, listed, labels_path)
    kept = set(data.ids)
    unlabelled = [i for i in listed if i not in kept]
    return data, unlabelled, img_dir, class_names(data.num_classes, args.dataset)


def output_paths(args, img_id, classes, names):
    paths = [infercam.split_record_path(args.split_path, img_id)]
    if not args.lossless_crops:
        paths += [infercam.crop_image_path(args.split_path, img_id, i)
                  for i in range(infercam.NUM_CROPS)]
    if args.out_cam:
        paths.append(os.path.join(args.out_cam, img_id + ".npy"))
    if args.heatmap:
        paths += list(heatmap_paths(args.heatmap, img_id, classes, names).values())
    return paths


def check_cam_settings(cam_dir, scales):
    """CAMs to reuse must come from the same scales (infer_cls.py writes them down)."""
    path = os.path.join(cam_dir, SETTINGS_FILE)
    if os.path.isfile(path):
        made = load_json(path, "CAM folder settings").get("scales")
        if made is not None and [float(v) for v in made] != [float(v) for v in scales]:
            raise InputError(f"{path}: CAMs made at scales {made}, split_img.py --scales is "
                             f"{list(scales)}")


def reused_cams(cam_dir, img_id, label, image_hw):
    """infer_cls.py's CAM dict of one image: every labelled class (load_cam_dict checks
    the classes against the label), at the image's size."""
    path = os.path.join(cam_dir, img_id + ".npy")
    cams = load_cam_dict(path, label)
    bad = [c for c, cam in cams.items() if cam.shape != tuple(image_hw)]
    if bad:
        raise InputError(f"{path}: CAM of class {bad[0]} is {cams[bad[0]].shape}, the image "
                         f"is {tuple(image_hw)}")
    return cams


def split_image(net, rgb, label, args, device, cams=None):
    """CAM dict, classes, mass centres and the four crop boxes of one image; the
    multi-scale CAM is computed unless `cams` (infer_cls.py's dict) is given."""
    if cams is None:
        norm_cam = camlib.multiscale_cam(net, rgb, label, args.scales, device, args.precision)
        cams = camlib.cam_dict_from_array(norm_cam, label)
    classes = camlib.present_classes(label)
    centers, boxes = infercam.split_from_cams(cams, classes, rgb.shape[:2], args.clamp_crops)
    return cams, classes, centers, boxes


def write_split_outputs(args, img_id, rgb, label, split, names):
    cams, classes, centers, boxes = split
    infercam.save_split_record(infercam.split_record_path(args.split_path, img_id),
                               rgb.shape[:2], len(label), classes, centers, boxes, args.clamp_crops)
    if not args.lossless_crops:
        for index, box in enumerate(boxes):
            infercam.save_crop_jpeg(infercam.crop_image_path(args.split_path, img_id, index),
                                    infercam.crop(rgb, box))
    if args.out_cam:
        save_npy(os.path.join(args.out_cam, img_id + ".npy"), cams)
    if args.heatmap:
        save_class_heatmaps(heatmap_paths(args.heatmap, img_id, classes, names), rgb, cams)


def stage_settings(args, num_classes):
    return {"stage": "split_img", "scales": args.scales, "flip": True, "crf": False,
            "weights": args.weights, "num_classes": num_classes, "cam_dir": args.cam_dir,
            "clamp_crops": args.clamp_crops, "lossless_crops": args.lossless_crops,
            "precision": args.precision}


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    data, unlabelled, img_dir, names = classifier_data(args)
    settings = stage_settings(args, data.num_classes)
    claim = claim_output_folders([("--split_path", args.split_path, settings),
                                  ("--out_cam", args.out_cam, settings),
                                  ("--heatmap", args.heatmap, settings)], args.overwrite)
    if args.cam_dir:
        check_cam_settings(args.cam_dir, args.scales)
    net = None if args.cam_dir else load_classifier(args.weights, data.num_classes, args.width,
                                                    device)

    for img_id in unlabelled:  # their records say so (infer_cam.py skips them too)
        path = infercam.split_record_path(args.split_path, img_id)
        if not output_done(path, args.overwrite):
            claim.record()
            infercam.save_unlabelled_record(path, data.num_classes)
    done = computed = 0
    for img_id in progress(data.ids, "split_img"):
        label = get_image_label(data.labels, img_id, data.labels_path)
        classes = camlib.present_classes(label)
        if all(output_done(p, args.overwrite)
               for p in output_paths(args, img_id, classes, names)):
            done += 1
            continue
        img_path = find_image(img_dir, img_id)
        rgb = read_image(img_path)
        camlib.check_scales(img_path, rgb.shape, args.scales)
        cams = reused_cams(args.cam_dir, img_id, label, rgb.shape[:2]) if args.cam_dir else None
        split = split_image(net, rgb, label, args, device, cams)
        claim.record()
        write_split_outputs(args, img_id, rgb, label, split, names)
        computed += 1
    print(f"split_img: {computed} images split, {done} already done "
          f"({len(data.ids) + data.unlabelled} listed, {data.skipped}: InferCam splits "
          "around the labelled classes)")


if __name__ == "__main__":
    run_main(main)
