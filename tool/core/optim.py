"""Poly-schedule SGD as in the original trainers (psa and AuxSegNet `tool/torchutils.py`).

Faithful quirk (golden README §6 psa 1): the originals call `SGD(params, lr, weight_decay)`,
so the weight-decay value lands in SGD's *momentum* slot and the default weight decay is 0:
only parameter groups that set 'weight_decay' themselves are decayed, and the momentum is
the wt_dec value (e.g. 5e-4). `momentum=None` reproduces that; a number (e.g. 0.9) gives
ordinary momentum with `weight_decay` as the default decay of every group."""
import torch

POLY_POWER = 0.9  # the originals' `momentum` attribute, used only as the poly power
AUX_CLS_CONSTANT_GROUP = 4  # AuxSegNet PolyOptimizer_cls: this group index is never decayed


def poly_mult(step, max_step, power=POLY_POWER):
    """(1 - step/max_step)^power."""
    return (1 - step / max_step) ** power


class PolyOptimizer(torch.optim.SGD):
    """psa PolyOptimizer: lr_g = initial_lr_g * poly_mult(step, max_step) while
    step < max_step, then frozen at the last value."""

    def __init__(self, params, lr, weight_decay, max_step, power=POLY_POWER, momentum=None):
        if momentum is None:
            super().__init__(params, lr=lr, momentum=weight_decay)
        else:
            super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.global_step = 0
        self.max_step = max_step
        self.power = power
        for group in self.param_groups:
            group.setdefault("initial_lr", group["lr"])

    def scheduled_lrs(self, step):
        """The lr of each group at `step`, or None to keep the current ones."""
        if step >= self.max_step:
            return None
        mult = poly_mult(step, self.max_step, self.power)
        return [g["initial_lr"] * mult for g in self.param_groups]

    def step(self, closure=None):
        lrs = self.scheduled_lrs(self.global_step)
        if lrs is not None:
            for group, lr in zip(self.param_groups, lrs):
                group["lr"] = lr
        loss = super().step(closure)
        self.global_step += 1
        return loss

    def state_dict(self):
        state = super().state_dict()
        state["global_step"] = self.global_step
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        self.global_step = state_dict.pop("global_step", 0)
        super().load_state_dict(state_dict)


class PolyOptimizer_cls(PolyOptimizer):
    """AuxSegNet PolyOptimizer_cls (what train_AuxAff.py uses): psa's schedule, except that
    group index 4, when there is one, keeps its initial lr (faithful to the original)."""

    def scheduled_lrs(self, step):
        lrs = super().scheduled_lrs(step)
        if lrs is not None and len(lrs) > AUX_CLS_CONSTANT_GROUP:
            lrs[AUX_CLS_CONSTANT_GROUP] = self.param_groups[AUX_CLS_CONSTANT_GROUP]["initial_lr"]
        return lrs


def psa_param_groups(groups, lr, weight_decay):
    """psa train_cls/train_aff groups from the 4 lists of Net.get_parameter_groups():
    backbone weights 1x lr, backbone biases 2x, new weights 10x, new biases 20x;
    weight decay on the weights only."""
    multipliers = (1, 2, 10, 20)
    decays = (weight_decay, 0, weight_decay, 0)
    return [{"params": list(p), "lr": m * lr, "weight_decay": wd}
            for p, m, wd in zip(groups, multipliers, decays)]


def psa_optimizer(net, lr, weight_decay, max_step, momentum=None):
    """PolyOptimizer over psa_param_groups(net.get_parameter_groups()): what train_cls,
    train_aff and train_seg build (momentum None = the originals' quirk, see above)."""
    groups = psa_param_groups(net.get_parameter_groups(), lr, weight_decay)
    return PolyOptimizer(groups, lr=lr, weight_decay=weight_decay, max_step=max_step,
                         momentum=momentum)
