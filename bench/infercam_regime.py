"""Is it the demo data that keeps InferCam below the CAM? A finished demo run's dataset is
drawn again in other regimes and InferCam is measured against the CAM on each:

    python bench/infercam_regime.py --run demo_out

Each variant changes some of data/make_demo_dataset.py's constants (or the image size) and
draws the run's images again with its seed; the run's own train_cls, infer_cls, split_img
and infer_cam commands (first lines of its logs) are then replayed on it with only the
folders changed (images twice as large: the classifier's crop and resize range doubled
too), one thread per process, the inference shards side by side. The variant "as drawn"
replays the same on the demo's own data, so every line is measured the same way. Per
variant: the CAM and the InferCam CAM at their best background thresholds, and each map's
mean activation on its objects' heads, on the rest of them, on the background next to them
(within one stride-8 cell) and far from them (`bench/diagnose_demo.py`, section 1)."""
import argparse
import contextlib
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import data.make_demo_dataset as demo  # noqa: E402
from bench.diagnose_demo import (Run, activation_by_region, activation_line,  # noqa: E402
                                 best_threshold_line, flag_value, rendered_heads, run_scripts,
                                 unsharded, with_flags, without_flags)
from tool.core.cli import run_main  # noqa: E402

SHARDS = 2
LARGER_OBJECTS = 1.3    # body radii factor
CLASS_LOOK = 0.5        # P(body wears its class's look); the demo: demo.BODY_PREFERENCE
HEADLESS = 0.3          # P(object shows no head); the demo: demo.HEADLESS_PROB
LARGER_IMAGES = 2       # image side factor
INFER_CLS_EXTRA_OUTPUTS = ("out_cam_pred", "out_la_crf", "out_ha_crf")


def variants():
    """name -> (make_demo_dataset constants to change, image side factor)."""
    larger = {k: tuple(LARGER_OBJECTS * r for r in v) for k, v in demo.BODY_RADIUS.items()}
    return {
        "as drawn": ({}, 1),
        f"larger objects (body radii x{LARGER_OBJECTS})": ({"BODY_RADIUS": larger}, 1),
        f"bodies in their class's look with p {CLASS_LOOK}": ({"BODY_PREFERENCE": CLASS_LOOK}, 1),
        "no distractors": ({"DISTRACTORS": (0, 0)}, 1),
        f"p {CLASS_LOOK} and no distractors": (
            {"BODY_PREFERENCE": CLASS_LOOK, "DISTRACTORS": (0, 0)}, 1),
        f"p {CLASS_LOOK} and {HEADLESS} of the objects headless": (
            {"BODY_PREFERENCE": CLASS_LOOK, "HEADLESS_PROB": HEADLESS}, 1),
        f"images x{LARGER_IMAGES}": ({}, LARGER_IMAGES),
    }


@contextlib.contextmanager
def patched(module, **values):
    """The module's named constants set to `values` inside the block (they must exist)."""
    old = {name: getattr(module, name) for name in values}
    try:
        for name, value in values.items():
            setattr(module, name, value)
        yield
    finally:
        for name, value in old.items():
            setattr(module, name, value)


def scaled_sizes(argv, factor):
    """train_cls.py's argv with --crop_size and both --resize_long values times `factor`."""
    argv = list(argv)
    for flag, count in (("--crop_size", 1), ("--resize_long", 2)):
        i = argv.index(flag)
        argv[i + 1:i + 1 + count] = [str(int(v) * factor) for v in argv[i + 1:i + 1 + count]]
    return argv


def shards(argv):
    return [argv + ["--shard", f"{i}/{SHARDS}"] for i in range(SHARDS)]


def draw_data(run, out, constants, factor):
    """The run's dataset drawn again under out/data with `constants` and image sides x
    factor; returns the visible heads of its training images."""
    argv = run.command("data")
    seed, sizes = int(flag_value(argv, "seed")), (demo.MIN_SIZE * factor, demo.MAX_SIZE * factor)
    with patched(demo, **constants):
        splits = demo.make_demo_dataset(out / "data", seed=seed,
                                        num_train=int(flag_value(argv, "num_train")),
                                        num_val=int(flag_value(argv, "num_val")),
                                        min_size=sizes[0], max_size=sizes[1])
        return rendered_heads(splits["train"], seed, *sizes)[0]


def replay(run, out, factor):
    """The run's classifier, CAM, split and InferCam commands on out/data → out/..."""
    data = out / "data"
    lists = {"voc12_root": data, "weights": out / "cls" / "resnet38_cls.pth"}
    train = with_flags(run.command("train_cls"), train_list=data / "train_aug.txt",
                       voc12_root=data, save_dir=out / "cls")
    run_scripts(scaled_sizes(train, factor) if factor != 1 else train)
    infer = with_flags(without_flags(run.command("infer_cls.0"), "shard",
                                     *INFER_CLS_EXTRA_OUTPUTS),
                       infer_list=data / "train_aug.txt", out_cam=out / "cam", **lists)
    run_scripts(*shards(infer))
    split = with_flags(unsharded(run.command("split_img.0")), infer_list=data / "train_aug.txt",
                       cam_dir=out / "cam", split_path=out / "split", **lists)
    run_scripts(*shards(split))
    infercam = with_flags(unsharded(run.command("infer_cam.0")),
                          infer_list=data / "train_aug.txt", split_path=out / "split",
                          out_cam=out / "infercam_cam", **lists)
    run_scripts(*shards(infercam))


def report(out, heads):
    run = Run(out)
    for name, folder in (("CAM", "cam"), ("InferCam CAM", "infercam_cam")):
        print(best_threshold_line(run, name, out / folder))
        print(activation_line(activation_by_region(run, folder, heads), name))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="demo_out", help="a finished run_demo.py output folder")
    p.add_argument("--work", default=None, help="scratch folder (default: RUN/infercam_regime)")
    p.add_argument("--variants", nargs="+", type=int, default=None, metavar="N",
                   help="numbers of the variants to run (default: all), in this order: "
                        + "; ".join(f"{i} {name}" for i, name in enumerate(variants())))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    run = Run(args.run)
    work = Path(args.work or run.out / "infercam_regime")
    every = list(variants().items())
    for number in args.variants or range(len(every)):
        name, (constants, factor) = every[number]
        print(f"{number}. {name}:", flush=True)
        out = work / f"variant_{number}"
        heads = draw_data(run, out, constants, factor)
        replay(run, out, factor)
        report(out, heads)


if __name__ == "__main__":
    run_main(main)
