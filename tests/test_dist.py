"""tool/core/dist.py: --shard parsing, deterministic interleaved shards, torchrun ranks."""
import argparse

import pytest
import torch

from tool.core import dist
from tool.core.cli import resolve_device
from tool.core.io import InputError

IDS = [f"2007_{i:06d}" for i in range(11)]


def parse(argv):
    parser = argparse.ArgumentParser()
    dist.add_shard_arg(parser)
    return parser.parse_args(argv)


@pytest.fixture(autouse=True)
def no_torchrun(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 11, 12])
def test_shards_are_disjoint_cover_and_keep_order(count):
    shards = [dist.shard_ids(IDS, parse(["--shard", f"{i}/{count}"])) for i in range(count)]
    assert sorted(sum(shards, [])) == IDS
    assert sum(len(s) for s in shards) == len(IDS)
    assert all(s == sorted(s) for s in shards)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_shard_is_interleaved():
    assert dist.shard_ids(IDS, parse(["--shard", "1/4"])) == [IDS[1], IDS[5], IDS[9]]


def test_no_shard_and_no_torchrun_is_everything():
    assert dist.shard_ids(IDS, parse([])) == IDS
    assert dist.is_main_process()


def test_torchrun_rank_picks_the_shard(monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert dist.shard_ids(IDS, parse([])) == IDS[2::3]
    assert not dist.is_main_process()
    assert dist.shard_ids(IDS, parse(["--shard", "0/2"])) == IDS[0::2]  # explicit wins


@pytest.mark.parametrize("text", ["3", "2/2", "-1/2", "a/b", "0/0", "1/2/3"])
def test_bad_shard_is_an_argument_error(text, capsys):
    with pytest.raises(SystemExit):
        parse(["--shard", text])
    assert "--shard" in capsys.readouterr().err


def test_plain_run_is_single_process():
    info = dist.init_distributed("cpu")
    assert (info.rank, info.world_size, info.distributed) == (0, 1, False)
    assert info.device.type == "cpu"


def fake_cuda(monkeypatch, count):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_gpu_id_picks_the_cuda_device_and_is_ignored_on_cpu(monkeypatch):
    fake_cuda(monkeypatch, 2)
    assert resolve_device("auto", 1) == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cpu", 1) == torch.device("cpu")
    with pytest.raises(InputError, match="--gpu_id 2: this machine has 2 CUDA"):
        resolve_device("cuda", 2)
    fake_cuda(monkeypatch, 0)
    assert resolve_device("auto", 0) == torch.device("cpu")
    with pytest.raises(InputError, match="--device cuda: no CUDA"):
        resolve_device("cuda", 0)
