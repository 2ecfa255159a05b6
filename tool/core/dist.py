"""Several processes on one job: torchrun process groups for the trainers, and a
deterministic split of an image list for the inference scripts (`--shard i/n`, or the
torchrun rank when the script runs under torchrun). Each process writes its own files,
so inference stages meet only on disk (as IRN's multi-GPU inference)."""
import argparse
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from tool.core.cli import add_device_arg, resolve_device
from tool.core.precision import add_precision_arg


@dataclass(frozen=True)
class DistInfo:
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def distributed(self):
        return dist.is_available() and dist.is_initialized()


def env_rank_world():
    """(RANK, WORLD_SIZE) set by torchrun, (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def rank_device(device_arg="auto", gpu_id=None):
    """`--device` (and `--gpu_id`) resolved; under torchrun a CUDA device is the
    process's LOCAL_RANK GPU."""
    device = resolve_device(device_arg, gpu_id)
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    return device


def init_distributed(device_arg="auto", gpu_id=None):
    """Join the torchrun process group when launched by torchrun (NCCL on CUDA, gloo on
    CPU; world size 1 works too); a plain run stays single-process. Returns DistInfo."""
    device = rank_device(device_arg, gpu_id)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(device, dist.get_rank(), dist.get_world_size())


def cleanup():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process():
    """True on rank 0, and in any single-process run."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return env_rank_world()[0] == 0


def parse_shard(text):
    """'i/n' with 0 <= i < n -> (i, n)."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/n (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"need 0 <= i < n in i/n, got {text!r}")
    return index, count


def add_shard_arg(parser):
    parser.add_argument("--shard", type=parse_shard, default=None, metavar="i/n",
                        help="process only every n-th image starting at the i-th (0-based), "
                             "to split a list over n processes or machines; by default the "
                             "torchrun RANK/WORLD_SIZE when set, else the whole list")


def add_inference_environment_args(group, gpu_id=False):
    """--device (with `gpu_id`, also --gpu_id), --precision and --shard: where an inference
    stage runs, at what precision, and which share of its image list it takes."""
    add_device_arg(group, gpu_id=gpu_id)
    add_precision_arg(group)
    add_shard_arg(group)


def shard_ids(ids, args):
    """This process's share of `ids`: ids[i::n] for `--shard i/n`, else for the torchrun
    rank, else all. The n shares are disjoint, cover the list and keep its order."""
    index, count = args.shard if getattr(args, "shard", None) else env_rank_world()
    return list(ids)[index::count]
