"""Arithmetic precision of the network forwards: `--precision fp32` (default, the
originals' float32) or `--precision bf16` (opt-in: bfloat16 autocast on the CPU, and AMP
on CUDA). On the project's AVX512-BF16 test CPU, bf16 forwards and training steps ran
1.2-2x faster; multi-scale CAMs moved by up to ~3 % of their maximum (InferCam's erasing
rounds amplify that, up to ~15 %) and ~0.5 % of the labels after the random walk or the
fusion changed (`make bench` measures and prints both). Only the forwards change: CAMs,
affinities and walks are computed further in float32/float64 as before."""
import contextlib

import torch

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
