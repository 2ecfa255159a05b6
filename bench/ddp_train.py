"""DDP training throughput under torchrun, for the GPU section of `make bench`: every
process trains --steps steps of the full-width ResNet-38 classifier on a random crop-321
batch with DistributedDataParallel (tool/dist.py, NCCL); rank 0 prints one JSON line
{"images_per_s": ..., "world_size": ...} counting the images of all processes.

    python -m torch.distributed.run --standalone --nproc_per_node N bench/ddp_train.py
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from network import resnet38_cls
from tool.core.dist import cleanup, init_distributed

LR = 1e-5


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=8, help="per process")
    p.add_argument("--crop", type=int, default=321)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = p.parse_args(argv)
    info = init_distributed(args.device)
    torch.manual_seed(info.rank)
    net = resnet38_cls.Net().to(info.device).train()
    model = DistributedDataParallel(net) if info.distributed else net
    optimizer = torch.optim.SGD([q for q in net.parameters() if q.requires_grad], lr=LR)
    x = torch.randn(args.batch, 3, args.crop, args.crop, device=info.device)
    y = (torch.rand(args.batch, net.num_classes, device=info.device) < 0.15).float()

    def step():
        loss = F.multilabel_soft_margin_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def synchronize():
        if info.device.type == "cuda":
            torch.cuda.synchronize(info.device)

    step()  # warm-up: buckets, kernels, allocator
    synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize()
    seconds = time.perf_counter() - start
    if info.rank == 0:
        print(json.dumps({"images_per_s": args.steps * args.batch * info.world_size / seconds,
                          "world_size": info.world_size}), flush=True)
    cleanup()


if __name__ == "__main__":
    main()
