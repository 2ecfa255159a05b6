"""What every stage script shares: the --device flag, the one-line error exits,
and the progress bar."""
import argparse
import sys

import torch
from tqdm import tqdm

from tool.io import InputError
from tool.train_step import NonFiniteLoss


def add_device_arg(parser):
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: CUDA when available, else CPU")


def positive_int(text):
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def resolve_device(name="auto"):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available (use --device cpu)")
    return torch.device(name)


def progress(iterable, desc, total=None, disable=False):
    """tqdm on stderr with the stage name."""
    return tqdm(iterable, desc=desc, total=total, disable=disable, dynamic_ncols=True,
                file=sys.stderr)


def run_main(main, argv=None):
    """Run a stage's main(); bad input ends with one line on stderr and exit code 2, a
    training run whose loss became NaN/inf with one line and exit code 1."""
    try:
        return main(argv)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except NonFiniteLoss as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
