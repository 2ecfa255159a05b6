import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
# One thread: the suite's networks are small, and two OpenMP threads beside DataLoader
# or CRF worker processes on a 2-core machine run many times slower, not faster.
torch.set_num_threads(1)

import pytest


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    """A small demo dataset (8 train, 3 val images) shared by the stage-script tests."""
    from data.make_demo_dataset import make_demo_dataset
    root = tmp_path_factory.mktemp("tiny_demo")
    make_demo_dataset(root, seed=1, num_train=8, num_val=3)
    return root


@pytest.fixture(scope="module")
def cls_net():
    """The ResNet-38 classifier with the golden recipe weights (golden README), built once
    per test module (needs the golden data: use it from @needs_golden tests)."""
    from golden import load_recipe
    from network import resnet38_cls
    return load_recipe(resnet38_cls.Net())
