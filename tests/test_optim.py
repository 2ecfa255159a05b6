"""Poly-schedule optimisers against the originals' lr sequences and parameter
trajectories (golden fn_poly_optimizers.npz), constructed from the values in its meta."""
import json
import re

import numpy as np
import pytest
import torch

from golden import golden_meta, load_golden, needs_golden
from tool.core import optim

# the golden run "aux_poly" is AuxSegNet's PolyOptimizer, which its train_AuxAff.py does
# not use (it uses PolyOptimizer_cls), so this project has no such optimiser
RUNS = {"psa_poly": optim.PolyOptimizer, "psa_poly_wd0.5": optim.PolyOptimizer,
        "aux_polycls": optim.PolyOptimizer_cls, "aux_polycls5": optim.PolyOptimizer_cls}


def constructor_values(desc):
    """Group lrs, lr, weight_decay, max_step and step count from a run's meta text."""
    lrs = json.loads(re.search(r"lrs=(\[[^\]]*\])", desc).group(1))
    kw = {k: float(re.search(rf"{k}=([0-9.e-]+)[,)]", desc).group(1))
          for k in ("lr", "weight_decay", "max_step")}
    steps = int(re.search(r"; (\d+) steps", desc).group(1))
    return lrs, kw["lr"], kw["weight_decay"], int(kw["max_step"]), steps


def run_toy(cls, lrs, lr, weight_decay, max_step, steps, **extra):
    """The golden harness: params start at 1+g, grad of group g at step k is (k+1)(g+1),
    only group 0 sets weight_decay. Returns (lr per step, element 0 per step)."""
    params = [torch.full((3,), 1.0 + g, requires_grad=True) for g in range(len(lrs))]
    groups = [{"params": [p], "lr": r} for p, r in zip(params, lrs)]
    groups[0]["weight_decay"] = weight_decay
    opt = cls(groups, lr=lr, weight_decay=weight_decay, max_step=max_step, **extra)
    lr_seq, p_seq = [], []
    for k in range(steps):
        for g, p in enumerate(params):
            p.grad = torch.full((3,), float((k + 1) * (g + 1)))
        opt.step()
        lr_seq.append([group["lr"] for group in opt.param_groups])
        p_seq.append([p[0].item() for p in params])
    return np.array(lr_seq), np.array(p_seq)


@needs_golden
@pytest.mark.parametrize("run", sorted(RUNS))
def test_matches_original_optimizer(run):
    g = load_golden("fn_poly_optimizers.npz")
    values = constructor_values(golden_meta(g)[f"{run}__desc"])
    lrs, params = run_toy(RUNS[run], *values)
    np.testing.assert_allclose(lrs, g[f"{run}__lr"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(params, g[f"{run}__param0"], rtol=0, atol=1e-6)


def test_faithful_quirk_puts_weight_decay_in_momentum_slot():
    p = torch.zeros(1, requires_grad=True)
    opt = optim.PolyOptimizer([{"params": [p], "lr": 0.1}], lr=0.1, weight_decay=5e-4, max_step=5)
    assert opt.param_groups[0]["momentum"] == 5e-4
    assert opt.param_groups[0]["weight_decay"] == 0


def test_momentum_flag_gives_ordinary_sgd():
    p = torch.zeros(1, requires_grad=True)
    opt = optim.PolyOptimizer([{"params": [p], "lr": 0.1}], lr=0.1, weight_decay=5e-4,
                              max_step=5, momentum=0.9)
    assert opt.param_groups[0]["momentum"] == 0.9
    assert opt.param_groups[0]["weight_decay"] == 5e-4


def test_resume_restores_schedule_position():
    args = ([0.1, 0.2], 0.1, 5e-4, 6)
    full_lrs, _ = run_toy(optim.PolyOptimizer, *args, steps=5)
    params = [torch.ones(3, requires_grad=True) for _ in range(2)]
    opt = optim.PolyOptimizer([{"params": [p], "lr": r} for p, r in zip(params, [0.1, 0.2])],
                              lr=0.1, weight_decay=5e-4, max_step=6)
    for p in params:
        p.grad = torch.ones(3)
    for _ in range(3):
        opt.step()
    fresh = optim.PolyOptimizer([{"params": [p], "lr": r} for p, r in zip(params, [0.1, 0.2])],
                                lr=0.1, weight_decay=5e-4, max_step=6)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.global_step == 3
    fresh.step()
    np.testing.assert_allclose([g["lr"] for g in fresh.param_groups], full_lrs[3], rtol=1e-12)


def test_psa_param_groups_multipliers_and_decay():
    groups = ([torch.zeros(1)], [torch.zeros(1)], [torch.zeros(1)], [torch.zeros(1)])
    out = optim.psa_param_groups(groups, lr=0.1, weight_decay=5e-4)
    assert [g["lr"] for g in out] == pytest.approx([0.1, 0.2, 1.0, 2.0])
    assert [g["weight_decay"] for g in out] == [5e-4, 0, 5e-4, 0]
    assert [g["params"][0] is groups[i][0] for i, g in enumerate(out)] == [True] * 4
