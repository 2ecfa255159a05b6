"""InferCam step 2 (InferCam `infer_cam.py`): refined CAMs by iterative erasing on the four
corner crops of split_img.py, merged by per-pixel maximum.

Per crop, up to 5 rounds of the multi-scale + flip CAM; after each round the pixels whose
running-max CAM reached 0.7 are filled with the input's mean in the next round; the
rounds stop when the remaining area shrank by less than 2% of the crop. Writes CAM dicts
{class: HxW float32} for the labelled classes (the format of infer_cls.py, read by
infer_aff.py and eval_seg.py) and optional per-class heatmaps.

The crops are split_img.py's JPEGs `<id>_1.jpg` .. `<id>_4.jpg` read back as the released
code did (or the published pre-split folders); --lossless_crops cuts them from the original
image by split_img.py's `<id>.json` boxes instead (no JPEG loss). Image sizes and labels
come from `<id>.json` when --voc12_root is not given. The defaults reproduce the released
code, quirks included.

    python infer_cam.py --weights res38_cls.pth --split_path splits --out_cam infercam_cam \\
        --heatmap heat_infercam      # --infer_list: released default voc12/train.txt
"""
import os

from tool.cam import classifier, infercam
from tool.cam import multiscale as camlib
from tool.core.cli import (nonnegative_float, positive_float, positive_int, progress,
                           resolve_device, run_main, script_parser)
from tool.core.io import InputError, claim_output_folders, output_done, read_image, save_npy
from tool.data.classes import class_names, labelled_images
from tool.data.voc import add_infer_data_args, find_image, get_image_label, infer_data


def build_parser():
    p = script_parser(__doc__)
    data = p.add_argument_group("data")
    add_infer_data_args(data, list_default=infercam.RELEASED_INFER_LIST, root_required=False)
    data.add_argument("--split_path", required=True,
                      help="split_img.py's folder: crops <id>_1..4.jpg and boxes <id>.json")
    data.add_argument("--lossless_crops", action="store_true",
                      help="cut the crops from the original image (needs --voc12_root) by the "
                           "<id>.json boxes instead of reading the JPEG crops back, as released")
    classifier.add_classifier_args(p.add_argument_group("model"), "InferCam infer_cam.py")
    erase = p.add_argument_group("InferCam erasing")
    erase.add_argument("--max_rounds", type=positive_int, default=infercam.MAX_ROUNDS,
                       help="InferCam infer_cam.py: at most 5 CAM rounds per crop")
    erase.add_argument("--erase_threshold", type=positive_float, default=infercam.ERASE_THRESHOLD,
                       help="InferCam: pixels whose running-max CAM reaches 0.7 are erased")
    erase.add_argument("--min_shrink", type=nonnegative_float, default=infercam.MIN_SHRINK,
                       help="InferCam: stop when the left area shrinks by less than 0.02 of "
                            "the crop")
    erase.add_argument("--flip_mask", action="store_true",
                       help="mirror the erasing mask for the flipped inputs (the released code "
                            "does not, so flipped inputs are erased at the mirrored place)")
    erase.add_argument("--direct_mask_resize", action="store_true",
                       help="resize the erasing mask from the crop size to each scale (the "
                            "released code resizes it in a chain, 1 -> 0.5 -> 1.5 -> 2)")
    out = p.add_argument_group("outputs")
    out.add_argument("--out_cam", default=None, help="refined CAM dicts {class: HxW} as .npy")
    out.add_argument("--heatmap", default=None, help="per-class CAM overlays <id>_<class>.jpg")
    out.add_argument("--overwrite", action="store_true", help="redo images already written")
    classifier.add_environment_args(p.add_argument_group("environment"))
    return p


def read_split_record(args, img_id):
    """split_img.py's record of one image, or None when there is none (pre-split folders)."""
    path = infercam.split_record_path(args.split_path, img_id)
    return infercam.load_split_record(path) if os.path.isfile(path) else None


def crop_data(args):
    """(the listed images with a labelled class, the image folder or None without
    --voc12_root, the class names); without a label file the labels come from
    split_img.py's records."""
    listed, img_dir, labels_path = infer_data(args)
    if labels_path is None:
        labels = infercam.labels_from_split_records(args.split_path, listed)
        data = labelled_images(args, listed, args.split_path, labels)
    else:
        data = labelled_images(args, listed, labels_path)
    return data, img_dir, class_names(data.num_classes, args.dataset)


def load_image(args, img_id, img_dir, record):
    """(original image or None without --voc12_root, its (H, W)); the record's size must
    match the image's."""
    if img_dir is None:
        return None, record["image_size"]
    rgb = read_image(find_image(img_dir, img_id))
    if record is not None and record["image_size"] != rgb.shape[:2]:
        path = infercam.split_record_path(args.split_path, img_id)
        raise InputError(f"{path}: boxes are for a {record['image_size'][0]}x"
                         f"{record['image_size'][1]} image but the image is "
                         f"{rgb.shape[0]}x{rgb.shape[1]}")
    return rgb, rgb.shape[:2]


def load_crops(args, img_id, rgb, record):
    """The four crops (uint8 RGB) of one image and, per crop, the file to blame for it."""
    if args.lossless_crops:
        path = infercam.split_record_path(args.split_path, img_id)
        if record is None:
            raise InputError(f"{path}: split record not found (--lossless_crops cuts the "
                             "crops by split_img.py's boxes)")
        return [infercam.crop(rgb, box) for box in record["boxes"]], [path] * infercam.NUM_CROPS
    paths = [infercam.crop_image_path(args.split_path, img_id, i)
             for i in range(infercam.NUM_CROPS)]
    return [read_image(p) for p in paths], paths


def check_crops(crops, sources, image_hw, scales):
    """Each crop must fit in the image and stay non-empty at every scale."""
    for index, (rgb, source) in enumerate(zip(crops, sources)):
        h, w = rgb.shape[:2]
        if h > image_hw[0] or w > image_hw[1]:
            raise InputError(f"{source}: crop {index + 1} is {h}x{w} but the image is "
                             f"{image_hw[0]}x{image_hw[1]}")
        if min(min(camlib.rounded_scaled_hw(h, w, s)) for s in scales) < 1:
            raise InputError(f"{source}: crop {index + 1} is {h}x{w}, empty at the smallest "
                             "scale (a negative crop start wrapped around; split the image "
                             "again with split_img.py --clamp_crops)")


def refine_options(args, device):
    return {"scales": args.scales, "device": device, "max_rounds": args.max_rounds,
            "threshold": args.erase_threshold, "min_shrink": args.min_shrink,
            "chained": not args.direct_mask_resize, "flip_mask": args.flip_mask,
            "precision": args.precision}


def stage_settings(args, num_classes):
    return {"stage": "infer_cam", "scales": args.scales, "flip": True, "crf": False,
            "weights": args.weights, "num_classes": num_classes, "split_path": args.split_path,
            "lossless_crops": args.lossless_crops, "max_rounds": args.max_rounds,
            "erase_threshold": args.erase_threshold, "min_shrink": args.min_shrink,
            "flip_mask": args.flip_mask, "direct_mask_resize": args.direct_mask_resize,
            "precision": args.precision}


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.out_cam or args.heatmap):
        parser.error("nothing to do: give --out_cam and/or --heatmap")
    if args.lossless_crops and not args.voc12_root:
        parser.error("--lossless_crops cuts the crops from the original images: give --voc12_root")
    device = resolve_device(args.device)
    data, img_dir, names = crop_data(args)
    settings = stage_settings(args, data.num_classes)
    claim = claim_output_folders([("--out_cam", args.out_cam, settings),
                                  ("--heatmap", args.heatmap, settings)], args.overwrite)
    net = classifier.load_classifier(args.weights, data.num_classes, args.width, device)
    options = refine_options(args, device)

    done = computed = rounds = crops_run = 0
    for img_id in progress(data.ids, "infer_cam"):
        record = read_split_record(args, img_id)
        label = get_image_label(data.labels, img_id, data.labels_path)
        classes = camlib.present_classes(label)
        cam_path = os.path.join(args.out_cam, img_id + ".npy") if args.out_cam else None
        heatmaps = classifier.heatmap_paths(args.heatmap, img_id, classes, names) \
            if args.heatmap else {}
        if all(output_done(p, args.overwrite) for p in [cam_path, *heatmaps.values()] if p):
            done += 1
            continue
        rgb, image_hw = load_image(args, img_id, img_dir, record)
        crops, sources = load_crops(args, img_id, rgb, record)
        check_crops(crops, sources, image_hw, args.scales)
        merged, shrinks = infercam.infer_cam(net, crops, label, image_hw, **options)
        cams = camlib.cam_dict_from_array(merged, label)
        claim.record()
        if cam_path:
            save_npy(cam_path, cams)
        if heatmaps:
            shown = rgb if rgb is not None else infercam.image_from_crops(crops, image_hw)
            classifier.save_class_heatmaps(heatmaps, shown, cams)
        computed += 1
        rounds += sum(len(s) for s in shrinks)
        crops_run += len(shrinks)
    print(f"infer_cam: {computed} images computed, {done} already done "
          f"({len(data.ids) + data.unlabelled} listed, {data.skipped}); "
          f"{rounds / max(crops_run, 1):.2f} erasing rounds per crop")


if __name__ == "__main__":
    run_main(main)
