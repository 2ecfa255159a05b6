"""Helpers for the parity tests: where ../shared is, the deterministic weight recipe of
shared/golden/README.md §2, and the tolerance check of §4."""
import json
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WSSS_SHARED", REPO.parent / "shared"))
GOLDEN = SHARED / "golden"
TESTDATA = SHARED / "testdata"

needs_golden = pytest.mark.skipif(not GOLDEN.is_dir(),
                                  reason=f"golden data folder {GOLDEN} is absent")
needs_testdata = pytest.mark.skipif(not TESTDATA.is_dir(),
                                    reason=f"shared test data folder {TESTDATA} is absent")

# The 17 last convolutions of the trunk's residual branches that the global rule halves.
_HALVED_BLOCKS = ("b2", "b2_1", "b2_2", "b3", "b3_1", "b3_2", "b4", "b4_1", "b4_2", "b4_3",
                  "b4_4", "b4_5", "b5", "b5_1", "b5_2")
HALVED_KEYS = {f"{b}.conv_branch2b1.weight" for b in _HALVED_BLOCKS} | {
    "b6.conv_branch2b2.weight", "b7.conv_branch2b2.weight"}


GOLDEN_THREADS = 2  # golden README §0: the originals ran with torch.set_num_threads(2)


@pytest.fixture(scope="module")
def golden_threads():
    """Run a module with the golden harness's thread count: the CRF chains amplify the
    float-order differences another count gives (tests/conftest.py uses 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(GOLDEN_THREADS)
    yield
    torch.set_num_threads(before)


def recipe_value(name, shape):
    rs = np.random.RandomState(zlib.crc32(name.encode("utf-8")))
    if name.endswith("num_batches_tracked"):
        return np.zeros(shape, np.int64)
    if name.endswith("running_mean"):
        v = rs.standard_normal(shape) * 0.1
    elif name.endswith("running_var"):
        v = rs.uniform(0.5, 1.5, size=shape)
    elif len(shape) >= 2:
        v = rs.standard_normal(shape) * np.sqrt(2.0 / int(np.prod(shape[1:])))
    elif name.endswith(".weight"):
        v = rs.uniform(0.5, 1.5, size=shape)
    else:
        v = rs.standard_normal(shape) * 0.1
    v = v.astype(np.float32)
    if name in HALVED_KEYS:
        v = v * np.float32(0.5)
    return v


def recipe_state_dict(net):
    return {k: torch.from_numpy(np.ascontiguousarray(recipe_value(k, tuple(v.shape))))
            for k, v in net.state_dict().items()}


def load_recipe(net):
    net.load_state_dict(recipe_state_dict(net))
    return net.eval()


def load_golden(name):
    return np.load(GOLDEN / name, allow_pickle=False)


def golden_meta(npz):
    return json.loads(str(npz["meta"]))


def assert_close(ours, ref, rtol=1e-4, atol_frac=1e-4, atol=None, name=""):
    """|a-b| <= atol + rtol*|b|, atol defaulting to atol_frac * max|b| (golden README §4)."""
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != {ref.shape}"
    if atol is None:
        atol = atol_frac * float(np.abs(ref).max()) if ref.size else 0.0
    err = np.abs(ours - ref) - (atol + rtol * np.abs(ref))
    assert err.max(initial=-1) <= 0, (f"{name}: max excess {err.max():.3g} over tolerance "
                                      f"(max abs diff {np.abs(ours - ref).max():.3g})")
