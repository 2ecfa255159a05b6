"""Multi-scale + flip CAMs of a trained ResNet-38 classifier (psa `infer_cls.py`).

Writes per image: the CAM dict (`--out_cam`), the CAM prediction PNG with background
0.2 (`--out_cam_pred`), the low/high background-power CRF score dicts that train
AffinityNet (`--out_la_crf`, `--out_ha_crf`) and heatmap overlays (`--out_heatmap`)."""
import os

from tool.cam import multiscale as camlib
from tool.cam.classifier import add_classifier_args, load_classifier
from tool.core.cli import (add_overwrite_arg, nonnegative_int, progress, resolve_device, run_main,
                           script_parser)
from tool.core.dist import add_inference_environment_args
from tool.core.io import (claim_output_folders, load_cam_dict, output_done, read_image,
                          save_label_png, save_npy)
from tool.core.visualize import save_cam_overlay
from tool.core.workers import map_with_workers
from tool.data.classes import labelled_images
from tool.data.voc import add_infer_data_args, find_image, get_image_label, infer_data
from tool.seg.crf import crf_with_bg_power

OUTPUT_KINDS = (("out_cam", ".npy"), ("out_cam_pred", ".png"), ("out_la_crf", ".npy"),
                ("out_ha_crf", ".npy"), ("out_heatmap", ".png"))


def build_parser():
    p = script_parser(__doc__)
    add_infer_data_args(p.add_argument_group("data"))
    add_classifier_args(p.add_argument_group("model"))
    cam = p.add_argument_group("CAM")
    cam.add_argument("--low_alpha", type=nonnegative_int, default=4,
                     help="psa: la CRF background power")
    cam.add_argument("--high_alpha", type=nonnegative_int, default=32,
                     help="psa: ha CRF background power")
    out = p.add_argument_group("outputs")
    out.add_argument("--out_cam", default=None, help="CAM dicts {class: HxW} as .npy")
    out.add_argument("--out_cam_pred", default=None, help="CAM label PNGs (background 0.2)")
    out.add_argument("--out_la_crf", default=None, help="low-alpha CRF score dicts")
    out.add_argument("--out_ha_crf", default=None, help="high-alpha CRF score dicts")
    out.add_argument("--out_heatmap", default=None, help="CAM heatmap overlays (PNG)")
    add_overwrite_arg(out)
    env = p.add_argument_group("environment")
    add_inference_environment_args(env)
    env.add_argument("--num_workers", "--workers", dest="workers", type=nonnegative_int,
                     default=1, help="processes for the CRF (0 or 1: in this process)")
    return p


def output_paths(args, img_id):
    return {kind: os.path.join(getattr(args, kind), img_id + ext)
            for kind, ext in OUTPUT_KINDS if getattr(args, kind)}


def write_cam_outputs(paths, rgb, norm_cam, label):
    cams = camlib.cam_dict_from_array(norm_cam, label)
    if "out_cam" in paths:
        save_npy(paths["out_cam"], cams)
    if "out_cam_pred" in paths:
        save_label_png(paths["out_cam_pred"], camlib.cam_prediction(norm_cam))
    if "out_heatmap" in paths and cams:
        save_cam_overlay(paths["out_heatmap"], rgb, cams)
    return cams


def crf_job(job):
    """One image's la/ha CRF dicts (runs in a worker process)."""
    img_path, cam_path, targets = job
    rgb = read_image(img_path)
    cams = load_cam_dict(cam_path)
    for alpha, path in targets:
        save_npy(path, crf_with_bg_power(rgb, cams, alpha))
    return len(targets)


def claim_outputs(args, num_classes):
    """Check every output folder against the settings that write it (settings.json)."""
    cam = {"stage": "infer_cls", "scales": args.scales, "flip": True, "crf": False,
           "weights": args.weights, "num_classes": num_classes, "precision": args.precision}
    crf = {**cam, "crf": True}
    return claim_output_folders(
        [("--out_cam", args.out_cam, cam), ("--out_cam_pred", args.out_cam_pred, cam),
         ("--out_heatmap", args.out_heatmap, cam),
         ("--out_la_crf", args.out_la_crf, {**crf, "alpha": args.low_alpha}),
         ("--out_ha_crf", args.out_ha_crf, {**crf, "alpha": args.high_alpha})],
        args.overwrite)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not any(getattr(args, kind) for kind, _ in OUTPUT_KINDS):
        parser.error("nothing to do: give at least one of --out_cam, --out_cam_pred, "
                     "--out_la_crf, --out_ha_crf, --out_heatmap")
    if (args.out_la_crf or args.out_ha_crf) and not args.out_cam:
        parser.error("--out_la_crf/--out_ha_crf need --out_cam (the CRF reads the CAM dicts)")
    device = resolve_device(args.device)
    listed, img_dir, labels_path = infer_data(args)
    data = labelled_images(args, listed, labels_path)

    claim = claim_outputs(args, data.num_classes)
    net = load_classifier(args.weights, data.num_classes, args.width, device)

    done = computed = 0
    crf_jobs = []
    for img_id in progress(data.ids, "infer_cls CAM"):
        paths = output_paths(args, img_id)
        cam_paths = {k: v for k, v in paths.items() if not k.endswith("_crf")}
        label = get_image_label(data.labels, img_id, labels_path)
        img_path = find_image(img_dir, img_id)
        if all(output_done(p, args.overwrite) for p in cam_paths.values()):
            done += 1
        else:
            rgb = read_image(img_path)
            camlib.check_scales(img_path, rgb.shape, args.scales)
            norm_cam = camlib.multiscale_cam(net, rgb, label, args.scales, device,
                                             args.precision)
            claim.record()
            write_cam_outputs(cam_paths, rgb, norm_cam, label)
            computed += 1
        targets = [(alpha, paths[kind]) for alpha, kind in
                   ((args.low_alpha, "out_la_crf"), (args.high_alpha, "out_ha_crf"))
                   if kind in paths and not output_done(paths[kind], args.overwrite)]
        if targets:
            crf_jobs.append((img_path, paths["out_cam"], targets))
    crf_done = sum(claim.recording(map_with_workers(crf_job, crf_jobs, args.workers)))
    print(f"infer_cls: {computed} images computed, {done} already done, "
          f"{crf_done} CRF dicts written ({len(listed)} listed, {data.skipped})")


if __name__ == "__main__":
    run_main(main)
