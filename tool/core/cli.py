"""What every stage script shares: the --device flag, the one-line error exits,
and the progress bar."""
import argparse
import math
import sys

import torch
from tqdm import tqdm

from tool.core.io import InputError, RunError


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose errors are one line on stderr ("<prog>: error:
    <what is wrong with which flag>", exit code 2), like every other bad input; the usage
    stays with --help."""

    def error(self, message):
        close_progress_bars()
        self.exit(2, f"{self.prog}: error: {message}\n")


def script_parser(doc, first_paragraph=False):
    """The parser of a stage script, described by its docstring `doc`: --help shows the
    docstring as written (usage examples included), or with `first_paragraph` only its
    first paragraph, each flag's help then ending with its default."""
    if first_paragraph:
        return ArgumentParser(description=doc.split("\n\n")[0],
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    return ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_device_arg(parser, gpu_id=False):
    """--device; with `gpu_id`, also the released AuxSegNet scripts' --gpu_id."""
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: CUDA when available, else CPU")
    if gpu_id:
        parser.add_argument("--gpu_id", type=nonnegative_int, default=None,
                            help="released AuxSegNet flag: the CUDA device to run on "
                                 "(cuda:N); ignored on a CPU run")


def add_network_arg(parser, name):
    """The released scripts' --network flag; `name` is the one network they can run."""
    parser.add_argument("--network", default=name, choices=[name],
                        help=f"accepted for the released command lines; {name} is the only "
                             "network of this stage")


def add_overwrite_arg(group, help="redo images already written"):
    """--overwrite: stages skip the outputs already written unless it is given."""
    group.add_argument("--overwrite", action="store_true", help=help)


def _int_at_least(text, low):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def positive_int(text):
    """argparse type: an integer of at least 1."""
    return _int_at_least(text, 1)


def nonnegative_int(text):
    """argparse type: an integer of at least 0."""
    return _int_at_least(text, 0)


def _finite_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text):
    """argparse type: a finite number above 0 (scales, widths, learning rates)."""
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def nonnegative_float(text):
    """argparse type: a finite number of at least 0 (weight decay, momentum, weights)."""
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value:g}")
    return value


def ordered_pair(parser, flag, pair):
    """parser.error unless the two values of a MIN MAX flag are in order."""
    if pair[0] > pair[1]:
        parser.error(f"{flag}: MIN {pair[0]} is above MAX {pair[1]}")


def resolve_device(name="auto", gpu_id=None):
    """--device (and --gpu_id) as a torch.device: auto is CUDA when available, else CPU;
    a CUDA device is cuda:<gpu_id> when --gpu_id is given."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available (use --device cpu)")
    if gpu_id is None:
        return torch.device("cuda")
    if gpu_id >= torch.cuda.device_count():
        raise InputError(f"--gpu_id {gpu_id}: this machine has {torch.cuda.device_count()} "
                         "CUDA device(s)")
    return torch.device("cuda", gpu_id)


def progress(iterable, desc, total=None, disable=False):
    """tqdm on stderr with the stage name."""
    return tqdm(iterable, desc=desc, total=total, disable=disable, dynamic_ncols=True,
                file=sys.stderr)


def close_progress_bars():
    """End the progress bars an error left open, so that its line starts a line."""
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def run_main(main, argv=None):
    """Run a stage's main(). Bad input (InputError, raised here, in a DataLoader worker or
    in a process pool) ends with one line on stderr and exit code 2; a run that cannot go
    on (RunError, e.g. tool.core.train_step.NonFiniteLoss: a training loss became NaN/inf) with
    one line and exit code 1."""
    try:
        return main(argv)
    except InputError as exc:
        close_progress_bars()
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except RunError as exc:
        close_progress_bars()
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
