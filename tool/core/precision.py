"""Arithmetic precision of the network forwards: `--precision fp32` (default, the
originals' float32) or `--precision bf16` (opt-in: bfloat16 autocast on the CPU, and AMP
on CUDA). On the project's AVX512-BF16 test CPU, bf16 forwards and training steps ran
1.2-2x faster; multi-scale CAMs moved by up to ~3 % of their maximum (InferCam's erasing
rounds amplify that, up to ~15 %) and ~0.5 % of the labels after the random walk or the
fusion changed (`make bench` measures and prints both). Every inference stage and trainer
takes the flag. Only the forwards change: the network outputs are cast to float32, and
CAMs, affinities, walks, probabilities and losses are computed from there in
float32/float64 as before."""
import contextlib

import torch

from tool.core.io import InputError

PRECISIONS = ("fp32", "bf16")
DEFAULT_PRECISION = "fp32"  # the original code's arithmetic


def add_precision_arg(parser):
    """--precision fp32|bf16 (default fp32, faithful)."""
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                        help="fp32: float32 forwards as the original code (default); bf16: "
                             "bfloat16 autocast (CPU with AVX512-BF16/AMX, CUDA AMP): faster "
                             "forwards, outputs within a few %% (README: Benchmarks)")


def precision_context(device, precision=DEFAULT_PRECISION):
    """A context manager in which the forwards on `device` run at `precision`:
    nothing changes for fp32; torch.autocast to bfloat16 for bf16."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def float32_outputs(outputs):
    """A network's outputs (a tensor, or a tuple/list/dict of them) with every floating
    tensor as float32, so the math after a bf16 forward (losses, softmax, CAM sums) runs
    in float32 as before; float32 tensors and non-tensors are returned as they are."""
    if torch.is_tensor(outputs):
        return outputs.float() if outputs.is_floating_point() else outputs
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(float32_outputs(o) for o in outputs)
    if isinstance(outputs, dict):
        return {k: float32_outputs(v) for k, v in outputs.items()}
    return outputs


def reject_amp_with_bf16(parser, amp, precision):
    """parser.error (one line, exit 2) when a trainer is given both --amp (float16 AMP on
    CUDA) and --precision bf16: two different autocasts, one has to be chosen."""
    if amp and precision == "bf16":
        parser.error("--amp and --precision bf16 exclude each other (--amp: float16 AMP on "
                     "CUDA; --precision bf16: bfloat16 autocast on CPU or CUDA); give one")


def check_resumed_precision(path, saved, precision):
    """InputError unless the training state at `path` was saved by a run at `precision`
    (`saved`: the precision it recorded; None for a state from before --precision
    existed, which trained in fp32)."""
    saved = DEFAULT_PRECISION if saved is None else saved
    if saved != precision:
        raise InputError(f"{path}: --resume: this training state was saved with --precision "
                         f"{saved}, this run has --precision {precision}; resume with "
                         f"--precision {saved} or start a new run")
