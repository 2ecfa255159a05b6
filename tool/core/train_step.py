"""The one optimiser step every trainer takes (train_cls, train_aff, train_AuxAff,
train_seg): forward (under float16 autocast with AMP, bfloat16 autocast with
--precision bf16, plain float32 otherwise; its outputs then as float32), the loss and its named terms, a check
that every term is finite, zero_grad, backward through the GradScaler, optimiser step.

A non-finite loss raises NonFiniteLoss before anything is stepped, so the weights of a
run never become NaN/inf: they stay those of the previous iteration (and its saved
checkpoints are usable). Under torchrun every process agrees on the check, so one
process's NaN stops all of them instead of leaving the others waiting in backward."""
import math

import torch
import torch.distributed as dist

from tool.core.io import RunError
from tool.core.precision import DEFAULT_PRECISION, float32_outputs, precision_context


class NonFiniteLoss(RunError):
    """A loss term became NaN or infinite; raised before the optimiser step (a RunError:
    tool.core.cli.run_main prints its one line and exits with code 1)."""


def as_float(value):
    """A loss term (tensor or number) as a Python float."""
    return float(value.detach()) if torch.is_tensor(value) else float(value)


def non_finite_term(terms):
    """The name of the first term of {name: float} that is NaN or infinite (the named parts
    before the total, which is non-finite whenever a part is), or None."""
    names = [k for k in terms if k != "loss"] + [k for k in terms if k == "loss"]
    return next((k for k in names if not math.isfinite(terms[k])), None)


def any_process(flag, device):
    """True when `flag` is true on any process of the torchrun group (itself otherwise)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    votes = torch.tensor([float(flag)], device=device)
    dist.all_reduce(votes, op=dist.ReduceOp.MAX)
    return bool(votes.item())


def check_finite(terms, iteration, device):
    """NonFiniteLoss naming the iteration and the term when a loss term is not finite
    (here or, under torchrun, on another process)."""
    bad = non_finite_term(terms)
    if not any_process(bad is not None, device):
        return
    where = "" if iteration is None else f"iteration {iteration}: "
    if bad is None:
        what = "a loss term is not finite on another process"
    elif bad == "loss":
        what = f"the loss is {terms[bad]}"
    else:
        what = f"loss term '{bad}' is {terms[bad]} (total loss {terms['loss']})"
    raise NonFiniteLoss(f"{where}{what}; stopped before the optimiser step, the weights are "
                        f"those of the previous iteration")


def forward_context(device, amp=False, precision=DEFAULT_PRECISION):
    """The autocast of a training forward: float16 AMP (`amp`; the trainers enable it on
    CUDA only), else `precision` (tool/core/precision.py). ValueError for both at once."""
    if amp and precision != DEFAULT_PRECISION:
        raise ValueError(f"amp and precision {precision!r} exclude each other")
    if amp:
        return torch.autocast(device_type=device.type)
    return precision_context(device, precision)


def sgd_step(model, optimizer, inputs, targets, loss_fn, scaler=None, amp=False,
             iteration=None, precision=DEFAULT_PRECISION):
    """One training step of `model` on `inputs` (already on the device).

    loss_fn(outputs, targets) returns (loss, {name: term}); the terms (tensors or floats)
    are what the trainer shows beside the loss. `scaler` is a torch.amp.GradScaler (None:
    plain backward); `amp` runs the forward under float16 autocast, `precision` "bf16"
    under bfloat16 autocast (no scaler needed: bfloat16 has float32's range); loss_fn gets
    the outputs as float32 either way. Returns {"loss": float, **terms as floats}.
    NonFiniteLoss (naming `iteration`) when a term is NaN/inf, before any gradient or
    weight changes."""
    with forward_context(inputs.device, amp, precision):
        outputs = model(inputs)
    loss, parts = loss_fn(float32_outputs(outputs), targets)
    terms = {"loss": as_float(loss)}
    terms.update((k, as_float(v)) for k, v in parts.items())
    check_finite(terms, iteration, inputs.device)
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return terms
