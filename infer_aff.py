"""Random-walk label maps from CAM dicts and a trained AffinityNet (psa `infer_aff.py`).

Per image: background (1 - max CAM)^alpha, the C + 1 scores pooled to 1/8, walked t = 2^logt
steps with T = A^beta / column sums, upsampled, argmax. Writes VOC-palette label PNGs to
--out_rw (and label overlays to --out_overlay) plus a settings.json for eval_seg.py.
--method dense is psa's dense matrix squaring; the default sparse walk gives the same
labels far faster."""
import os

from network import resnet38_aff
from network.pairs import min_input_size
from tool.core.checkpoint import load_weights
from tool.core.cli import (add_overwrite_arg, nonnegative_int, positive_float, progress,
                           resolve_device, run_main, script_parser)
from tool.core.dist import add_inference_environment_args
from tool.core.io import (InputError, claim_output_folders, load_cam_dict, output_done, read_image,
                          save_label_png, save_rgb)
from tool.core.visualize import label_overlay
from tool.data.classes import add_dataset_arg, labelled_images
from tool.data.voc import add_infer_data_args, find_image, get_image_label, infer_data
from tool.psa import random_walk as rw

MIN_HEIGHT, MIN_WIDTH = min_input_size()  # 33 x 65 px: a 5 x 9 feature map


def build_parser():
    p = script_parser(__doc__)
    data = p.add_argument_group("data")
    add_infer_data_args(data, "psa cls_labels.npy, to check the CAM dicts' classes")
    data.add_argument("--cam_dir", required=True, help="CAM dicts <id>.npy of infer_cls.py")
    add_dataset_arg(data, found_in="the image labels")
    model = p.add_argument_group("model")
    model.add_argument("--weights", required=True, help="AffinityNet checkpoint (.pth)")
    model.add_argument("--network", default="network.resnet38_aff",
                       help="accepted for psa compatibility; only network.resnet38_aff exists")
    model.add_argument("--width", type=positive_float, default=1.0,
                       help="channel multiplier (1.0 = paper)")
    walk = p.add_argument_group("random walk (psa infer_aff.py defaults)")
    walk.add_argument("--alpha", type=positive_float, default=rw.RW_ALPHA,
                      help="background score (1 - max CAM)^alpha; psa: 16")
    walk.add_argument("--beta", type=positive_float, default=rw.RW_BETA,
                      help="affinity power; psa: 8")
    walk.add_argument("--logt", type=nonnegative_int, default=rw.RW_LOGT,
                      help="walk 2^logt steps; psa: 8 (256 steps)")
    walk.add_argument("--scale", type=positive_float, default=rw.RW_SCALE,
                      help="walk on the image and CAMs resized by this factor, scores resized "
                           "back (not psa; psa: 1). Small images (~128 px) give a coarse 1/8 "
                           "grid that the walk floods; 2 suits the demo")
    walk.add_argument("--method", choices=rw.METHODS, default="sparse",
                      help="sparse: band-matrix steps (fast, default); dense: psa's squaring "
                           "of the dense (hw)^2 matrix")
    out = p.add_argument_group("outputs")
    out.add_argument("--out_rw", required=True, help="random-walk label PNGs (VOC palette)")
    out.add_argument("--out_overlay", default=None, help="label overlays on the image (PNG)")
    add_overwrite_arg(out)
    env = p.add_argument_group("environment")
    add_inference_environment_args(env)
    env.add_argument("--num_workers", type=nonnegative_int, default=1,
                     help="accepted for psa compatibility; images are read in the main process")
    return p


def output_paths(args, img_id):
    """The label PNG, then the overlay when asked for."""
    folders = [args.out_rw] + ([args.out_overlay] if args.out_overlay else [])
    return [os.path.join(folder, img_id + ".png") for folder in folders]


def check_image_size(path, rgb, scale=rw.RW_SCALE):
    height, width = rgb.shape[:2]
    walked = round(height * scale), round(width * scale)
    if walked[0] < MIN_HEIGHT or walked[1] < MIN_WIDTH:
        at = "" if scale == 1 else f" (at --scale {scale}: {walked[0]}x{walked[1]})"
        raise InputError(f"{path}: image is {height}x{width}{at}; the affinity net needs at "
                         f"least {MIN_HEIGHT}x{MIN_WIDTH} (HxW)")


def check_cam_shapes(path, cams, shape):
    bad = [k for k, cam in cams.items() if cam.shape != tuple(shape)]
    if bad:
        raise InputError(f"{path}: CAM of class {bad[0]} is {cams[bad[0]].shape}, the image is "
                         f"{tuple(shape)}")


def cam_paths(cam_dir, ids):
    """The CAM file of every id; a missing one fails before any work."""
    paths = {img_id: os.path.join(cam_dir, img_id + ".npy") for img_id in ids}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(f"{missing[0]}: CAM file not found{more}")
    return paths


def claim_outputs(args, num_classes):
    """Check the output folders against the settings that write them (settings.json)."""
    settings = {"stage": "infer_aff", "alpha": args.alpha, "beta": args.beta,
                "logt": args.logt, "scale": args.scale, "method": args.method,
                "cam_dir": args.cam_dir, "weights": args.weights, "crf": False,
                "num_classes": num_classes, "precision": args.precision}
    return claim_output_folders([("--out_rw", args.out_rw, settings),
                                 ("--out_overlay", args.out_overlay, settings)], args.overwrite)


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    listed, img_dir, labels_path = infer_data(args)
    data = labelled_images(args, listed, labels_path)

    todo = [i for i in data.ids if not all(output_done(p, args.overwrite)
                                           for p in output_paths(args, i))]
    cam_files = cam_paths(args.cam_dir, todo)

    claim = claim_outputs(args, data.num_classes)
    net = resnet38_aff.Net(width=args.width)
    load_weights(net, args.weights)
    net.eval().to(device)
    for img_id in progress(todo, "infer_aff"):
        label = get_image_label(data.labels, img_id, labels_path)
        cams = load_cam_dict(cam_files[img_id], label)
        img_path = find_image(img_dir, img_id)
        rgb = read_image(img_path)
        check_image_size(img_path, rgb, args.scale)
        check_cam_shapes(cam_files[img_id], cams, rgb.shape[:2])
        rw_label = rw.random_walk_label(net, rgb, cams, args.alpha, args.beta, args.logt,
                                        args.method, device, args.scale, data.num_classes,
                                        args.precision)
        paths = output_paths(args, img_id)
        claim.record()
        save_label_png(paths[0], rw_label)
        if args.out_overlay:
            save_rgb(paths[1], label_overlay(rgb, rw_label))
    print(f"infer_aff: {len(todo)} images computed, {len(data.ids) - len(todo)} already done "
          f"({len(listed)} listed, {data.skipped})")


if __name__ == "__main__":
    run_main(main)
