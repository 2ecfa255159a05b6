"""Update AuxSegNet's pseudo labels with a trained AuxSegNet (released gen_pgt.py).

Per image, single scale: the relu'd, max-normalised CAM is refined by the cross-task
affinity and upsampled; the sigmoid of the refined saliency, upsampled, is averaged with
the ORIGINAL off-the-shelf saliency and passed through the saliency CRF. Saved: the new
saliency label uint8(truncate(255 * fused)) as a grey PNG, and the heuristic fusion of
refined CAM and fused saliency as a VOC palette PNG.

    python gen_pgt.py --weights aux_round1/AuxSegNet_final.pth \\
        --img_path VOC2012/JPEGImages --SALpath VOC2012/SAL \\
        --seg_pgt_path round1/seg --sal_pgt_path round1/sal
"""
import os

from tool.auxsegnet import model, pgt
from tool.core import dist
from tool.core.cli import add_overwrite_arg, nonnegative_int, progress, run_main, script_parser
from tool.core.io import InputError, claim_output_folders, output_done, read_image, read_saliency
from tool.core.workers import map_with_workers
from tool.data.classes import labelled_images
from tool.data.voc import find_image, find_label, get_image_label, read_image_list


def build_parser():
    p = script_parser(__doc__, first_paragraph=True)
    p.add_argument("--weights", required=True, help="trained AuxSegNet weights")
    p.add_argument("--img_path", required=True, help="images <id>.jpg")
    p.add_argument("--SALpath", required=True,
                   help="the original off-the-shelf saliency maps <id>.png (every round "
                        "fuses with these, not with the previous round's)")
    pgt.add_pseudo_label_args(p, written=True)
    model.add_width_arg(p)
    p.add_argument("--workers", type=nonnegative_int, default=1,
                   help="processes for the saliency CRF and fusion (0 or 1: inline)")
    add_overwrite_arg(p)
    model.add_released_inference_args(p)
    return p


def output_paths(img_id, args):
    return (os.path.join(args.sal_pgt_path, img_id + ".png"),
            os.path.join(args.seg_pgt_path, img_id + ".png"))


def work_items(net, ids, args, labels, device):
    """Run the network on each image; yield the CRF/fusion work items."""
    for img_id in ids:
        rgb = read_image(find_image(args.img_path, img_id))
        sal_in = read_saliency(find_label(args.SALpath, img_id), shape=rgb.shape)
        label = get_image_label(labels, img_id, args.cls_labels)
        refined_cam, ref_sal = pgt.update_scores(net, rgb, device, args.precision)
        yield (rgb, refined_cam, ref_sal, sal_in, label) + output_paths(img_id, args)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not os.path.isdir(args.SALpath):
        raise InputError(f"{args.SALpath}: --SALpath saliency folder not found")
    device = dist.rank_device(args.device, args.gpu_id)
    data = labelled_images(args, dist.shard_ids(read_image_list(args.list_path), args),
                           args.cls_labels)
    todo = [i for i in data.ids
            if not all(output_done(p, args.overwrite) for p in output_paths(i, args))]
    settings = {"stage": "gen_pgt", "weights": args.weights, "SALpath": args.SALpath,
                "num_classes": data.num_classes + 1, "precision": args.precision}
    claim = claim_output_folders([("--seg_pgt_path", args.seg_pgt_path, settings),
                                  ("--sal_pgt_path", args.sal_pgt_path, settings)],
                                 args.overwrite)
    net = model.load_segnet(args.weights, data.num_classes + 1, args.width, device)
    items = work_items(net, todo, args, data.labels, device)
    written = 0
    results = map_with_workers(pgt.write_updated_labels, items, args.workers)
    for _ in progress(claim.recording(results), "gen_pgt", total=len(todo)):
        written += 1
    print(f"gen_pgt: {written} images updated, {len(data.ids) - len(todo)} already done, "
          f"{data.skipped}; labels in {args.seg_pgt_path}, "
          f"saliency in {args.sal_pgt_path}")
    return written


if __name__ == "__main__":
    run_main(main)
