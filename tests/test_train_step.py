"""tool.core.train_step.sgd_step, the one training step of every trainer: an ordinary SGD step
with the loss terms as floats; a NaN/inf loss stops the run before anything is stepped,
and the scripts end with one line and exit code 1."""
import re

import numpy as np
import pytest
import torch

import train_cls
from tool.core.cli import run_main
from tool.core.train_step import NonFiniteLoss, non_finite_term, sgd_step


def toy():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    inputs, targets = torch.randn(4, 3), torch.randn(4, 2)
    return model, optimizer, inputs, targets


def two_terms(outputs, targets):
    fit = torch.mean((outputs - targets) ** 2)
    size = outputs.abs().mean()
    return fit + 0.5 * size, {"fit": fit, "size": size}


def test_step_is_an_ordinary_sgd_step_and_returns_the_terms():
    model, optimizer, inputs, targets = toy()
    twin, twin_optimizer, _, _ = toy()
    terms = sgd_step(model, optimizer, inputs, targets, two_terms)
    loss, parts = two_terms(twin(inputs), targets)
    twin_optimizer.zero_grad()
    loss.backward()
    twin_optimizer.step()
    assert list(terms) == ["loss", "fit", "size"]
    assert all(isinstance(v, float) for v in terms.values())
    assert terms["loss"] == pytest.approx(loss.item())
    assert terms["fit"] == pytest.approx(parts["fit"].item())
    for ours, ref in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(ours, ref, rtol=0, atol=0)


def test_disabled_grad_scaler_is_the_plain_step():
    model, optimizer, inputs, targets = toy()
    twin, twin_optimizer, _, _ = toy()
    for _ in range(2):
        sgd_step(model, optimizer, inputs, targets, two_terms)
        sgd_step(twin, twin_optimizer, inputs, targets, two_terms,
                 scaler=torch.amp.GradScaler("cpu", enabled=False))
    for ours, ref in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(ours, ref, rtol=0, atol=0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_term_stops_before_anything_is_stepped(bad):
    model, optimizer, inputs, targets = toy()
    sgd_step(model, optimizer, inputs, targets, two_terms)  # a momentum buffer exists now
    weights = [p.detach().clone() for p in model.parameters()]
    momentum = [optimizer.state[p]["momentum_buffer"].clone() for p in model.parameters()]

    def broken(outputs, targets):
        loss, parts = two_terms(outputs, targets)
        parts["size"] = parts["size"] * bad
        return loss + parts["size"], parts

    with pytest.raises(NonFiniteLoss, match=r"^iteration 7: loss term 'size' is (nan|inf)"):
        sgd_step(model, optimizer, inputs, targets, broken, iteration=7)
    for p, before, buffer in zip(model.parameters(), weights, momentum):
        assert torch.equal(p.detach(), before)
        assert torch.equal(optimizer.state[p]["momentum_buffer"], buffer)


def test_non_finite_total_without_terms_is_named_the_loss():
    model, optimizer, inputs, targets = toy()
    with pytest.raises(NonFiniteLoss, match=r"^iteration 3: the loss is nan; stopped before"):
        sgd_step(model, optimizer, inputs, targets,
                 lambda out, tgt: (out.sum() * float("nan"), {}), iteration=3)
    assert all(p.grad is None for p in model.parameters())


def test_non_finite_term_prefers_the_named_part_to_the_total():
    assert non_finite_term({"loss": np.nan, "a": 1.0, "b": np.inf}) == "b"
    assert non_finite_term({"loss": np.inf}) == "loss"
    assert non_finite_term({"loss": 1.0, "a": 2.0}) is None


def test_run_main_ends_a_diverging_run_with_one_line_and_exit_1(capsys):
    def diverging(argv):
        raise NonFiniteLoss("iteration 5: the loss is nan; stopped before the optimiser step")

    with pytest.raises(SystemExit) as exit_info:
        run_main(diverging, [])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: iteration 5: the loss is nan; stopped before the optimiser step"]


def test_train_cls_with_a_diverging_lr_exits_1_naming_the_iteration(tiny_demo, tmp_path, capsys):
    """lr 1e30: the first step leaves finite but huge weights, the second forward gives NaN."""
    argv = ["--train_list", str(tiny_demo / "train.txt"), "--voc12_root", str(tiny_demo),
            "--save_dir", str(tmp_path), "--width", "0.125", "--crop_size", "64",
            "--resize_long", "64", "96", "--batch_size", "4", "--num_workers", "0",
            "--max_epoches", "1", "--lr", "1e30"]
    with pytest.raises(SystemExit) as exit_info:
        run_main(train_cls.main, argv)
    assert exit_info.value.code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(errors) == 1
    assert re.match(r"error: iteration 2: the loss is (nan|inf); stopped before", errors[0])
