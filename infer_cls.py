"""Multi-scale + flip CAMs of a trained ResNet-38 classifier (psa `infer_cls.py`).

Writes per image: the CAM dict (`--out_cam`), the CAM prediction PNG with background
0.2 (`--out_cam_pred`), the low/high background-power CRF score dicts that train
AffinityNet (`--out_la_crf`, `--out_ha_crf`) and heatmap overlays (`--out_heatmap`)."""
import argparse
import os

from network import resnet38_cls
from tool import cam as camlib
from tool.checkpoint import load_weights
from tool.cli import add_device_arg, progress, resolve_device, run_main
from tool.crf import crf_with_bg_power, map_with_workers
from tool.dist import add_shard_arg
from tool.io import (SETTINGS_FILE, load_cam_dict, output_done, read_image, save_json,
                     save_label_png, save_npy)
from tool.precision import add_precision_arg
from tool.visualize import save_cam_overlay
from tool.voc import add_infer_data_args, find_image, get_image_label, infer_data

OUTPUT_KINDS = (("out_cam", ".npy"), ("out_cam_pred", ".png"), ("out_la_crf", ".npy"),
                ("out_ha_crf", ".npy"), ("out_heatmap", ".png"))


def build_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_infer_data_args(p.add_argument_group("data"))
    model = p.add_argument_group("model")
    model.add_argument("--weights", required=True, help="classifier checkpoint (.pth)")
    model.add_argument("--network", default="network.resnet38_cls",
                       help="accepted for psa compatibility; only network.resnet38_cls exists")
    model.add_argument("--num_classes", type=int, default=resnet38_cls.NUM_CLASSES)
    model.add_argument("--width", type=float, default=1.0, help="channel multiplier (1.0 = paper)")
    cam = p.add_argument_group("CAM")
    cam.add_argument("--scales", type=float, nargs="+", default=list(camlib.CAM_SCALES),
                     help="psa infer_cls.py: 1.0 0.5 1.5 2.0, each with its flip")
    cam.add_argument("--low_alpha", type=int, default=4, help="psa: la CRF background power")
    cam.add_argument("--high_alpha", type=int, default=32, help="psa: ha CRF background power")
    out = p.add_argument_group("outputs")
    out.add_argument("--out_cam", default=None, help="CAM dicts {class: HxW} as .npy")
    out.add_argument("--out_cam_pred", default=None, help="CAM label PNGs (background 0.2)")
    out.add_argument("--out_la_crf", default=None, help="low-alpha CRF score dicts")
    out.add_argument("--out_ha_crf", default=None, help="high-alpha CRF score dicts")
    out.add_argument("--out_heatmap", default=None, help="CAM heatmap overlays (PNG)")
    out.add_argument("--overwrite", action="store_true", help="redo images already written")
    env = p.add_argument_group("environment")
    add_device_arg(env)
    add_precision_arg(env)
    env.add_argument("--num_workers", "--workers", dest="workers", type=int, default=1,
                     help="processes for the CRF")
    add_shard_arg(env)
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


def write_settings(folder, args):
    save_json(os.path.join(folder, SETTINGS_FILE),
              {"stage": "infer_cls", "scales": args.scales, "flip": True, "crf": False,
               "weights": args.weights, "precision": args.precision})


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not any(getattr(args, kind) for kind, _ in OUTPUT_KINDS):
        raise SystemExit("nothing to do: give at least one of --out_cam, --out_cam_pred, "
                         "--out_la_crf, --out_ha_crf, --out_heatmap")
    device = resolve_device(args.device)
    ids, img_dir, labels, labels_path = infer_data(args)
    crf_wanted = bool(args.out_la_crf or args.out_ha_crf)
    if crf_wanted and not args.out_cam:
        raise SystemExit("--out_la_crf/--out_ha_crf need --out_cam (the CRF reads the CAM dicts)")

    net = resnet38_cls.Net(num_classes=args.num_classes, width=args.width)
    load_weights(net, args.weights, num_classes=args.num_classes)
    net.eval().to(device)

    done = computed = 0
    crf_jobs = []
    for img_id in progress(ids, "infer_cls CAM"):
        paths = output_paths(args, img_id)
        cam_paths = {k: v for k, v in paths.items() if not k.endswith("_crf")}
        label = get_image_label(labels, img_id, labels_path)
        img_path = find_image(img_dir, img_id)
        if all(output_done(p, args.overwrite) for p in cam_paths.values()):
            done += 1
        else:
            rgb = read_image(img_path)
            norm_cam = camlib.multiscale_cam(net, rgb, label, args.scales, device,
                                             args.precision)
            write_cam_outputs(cam_paths, rgb, norm_cam, label)
            computed += 1
        targets = [(alpha, paths[kind]) for alpha, kind in
                   ((args.low_alpha, "out_la_crf"), (args.high_alpha, "out_ha_crf"))
                   if kind in paths and not output_done(paths[kind], args.overwrite)]
        if targets:
            crf_jobs.append((img_path, paths["out_cam"], targets))
    for folder in (args.out_cam, args.out_cam_pred):
        if folder:
            write_settings(folder, args)
    crf_done = sum(map_with_workers(crf_job, crf_jobs, args.workers)) if crf_jobs else 0
    print(f"infer_cls: {computed} images computed, {done} already done, "
          f"{crf_done} CRF dicts written ({len(ids)} listed)")


if __name__ == "__main__":
    run_main(main)
