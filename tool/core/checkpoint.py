"""Checkpoints: read released weights (.pth state dicts, DataParallel `module.` saves, dicts
holding 'state_dict'/'model', MXNet ImageNet `.params`), load them into a network with one
readable report line and one-line errors for the usual mistakes (wrong class count, wrong
--width, a checkpoint of another network), save plain state dicts atomically, and keep the
training state for --resume."""
import os
import re
import struct

import torch
import torch.nn as nn

from tool.core.io import InputError, RunError, atomic_path
from tool.core.mxnet_params import LIST_MAGIC, read_mxnet_params, resnet38_state_dict_from_mxnet

DDP_PREFIX = "module."
WRAPPER_KEYS = ("state_dict", "model")
# BatchNorm counters: absent from PyTorch < 0.4.1 and MXNet files, unused in eval mode.
OPTIONAL_SUFFIX = "num_batches_tracked"
# Classifier heads: their first dimension is the class count.
HEAD_KEY = re.compile(
    r"^(fc8|seg_conv4|fc8_seg_conv2|aspp\.c\d+|classifier(\.\w+)*)\.(weight|bias)$")
# (network, a key only it has); the first match names a state dict's network.
NETWORK_SIGNATURES = (
    ("AffinityNet (network.resnet38_aff)", "f8_3.weight"),
    ("AuxSegNet (network.AuxSegNet)", "seg_conv4.weight"),
    ("ResNet-38 DeepLab-LargeFOV (network.deeplab_largefov)", "fc8_seg_conv2.weight"),
    ("DeepLab-v2 (network.deeplab_v2)", "aspp.c0.weight"),
    ("ResNet-101 (network.resnet101)", "layer4.0.conv1.weight"),
    ("ResNet-38 classifier (network.resnet38_cls)", "fc8.weight"),
    ("ResNet-38 trunk (network.resnet38d)", "bn7.weight"),
)
# Segmentation heads whose first dimension is the class count, background included.
SEG_CLASS_KEYS = ("seg_conv4.weight", "fc8_seg_conv2.weight", "aspp.c0.weight")
SUMMARY_GROUPS = 4
TRAINING_STATE_KEYS = ("model", "optimizer", "epoch", "step")


def unwrap_model(net):
    """The module inside a DataParallel / DistributedDataParallel wrapper."""
    wrappers = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    return net.module if isinstance(net, wrappers) else net


def strip_ddp_prefix(state):
    """Drop the `module.` that DataParallel/DDP saves put before every key."""
    if state and all(k.startswith(DDP_PREFIX) for k in state):
        return {k[len(DDP_PREFIX):]: v for k, v in state.items()}
    return dict(state)


def is_mxnet_params(path):
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise InputError(f"{path}: cannot open checkpoint ({exc.strerror})") from None
    return len(head) == 8 and struct.unpack("<Q", head)[0] == LIST_MAGIC


def _torch_load(path):
    if not os.path.isfile(path):
        raise InputError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/pickle raise many kinds for a foreign or broken file
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InputError(f"{path}: unreadable checkpoint ({exc.__class__.__name__}: {reason})"
                         ) from None


def state_dict_of(obj, path):
    """The tensor dict inside a loaded checkpoint object, `module.` stripped."""
    for key in WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj:
        raise InputError(f"{path}: not a state dict (got {type(obj).__name__}"
                         f"{' (empty)' if isinstance(obj, dict) else ''})")
    for key, value in obj.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise InputError(f"{path}: not a state dict (entry {key!r} is a "
                             f"{type(value).__name__}, not a tensor)")
    bad = first_non_finite(obj)
    if bad is not None:
        raise InputError(f"{path}: checkpoint holds NaN/Inf values ({bad}); it is not usable")
    return strip_ddp_prefix(obj)


def first_non_finite(state):
    """The first key of a state dict whose floating-point tensor has a NaN/Inf, or None."""
    return next((key for key, value in state.items()
                 if value.is_floating_point() and not torch.isfinite(value).all()), None)


def read_checkpoint(path):
    """{key: CPU tensor} from a .pth (plain, wrapped, `module.`-prefixed) or an MXNet
    ResNet-38 `.params` (renamed to this project's keys)."""
    path = os.fspath(path)
    if os.path.isfile(path) and is_mxnet_params(path):
        params = resnet38_state_dict_from_mxnet(read_mxnet_params(path), source=path)
        return state_dict_of({k: torch.from_numpy(v) for k, v in params.items()}, path)
    return state_dict_of(_torch_load(path), path)


def network_name(keys):
    """Which known network a set of state-dict keys belongs to, or None."""
    keys = set(keys)
    return next((name for name, key in NETWORK_SIGNATURES if key in keys), None)


def segmentation_class_count(state):
    """Classes (background included) of a segmentation state dict's head, or None when it
    has none of SEG_CLASS_KEYS (AuxSegNet, LargeFOV, DeepLab-v2)."""
    key = next((k for k in SEG_CLASS_KEYS if k in state), None)
    return None if key is None else int(state[key].shape[0])


def summarise_keys(keys):
    """'3 keys (fc8.weight, f8_3.* (2))': keys grouped by top-level module."""
    groups = {}
    for key in keys:
        groups.setdefault(key.split(".")[0], []).append(key)
    parts = [names[0] if len(names) == 1 else f"{module}.* ({len(names)})"
             for module, names in groups.items()]
    if len(parts) > SUMMARY_GROUPS:
        parts = parts[:SUMMARY_GROUPS] + ["..."]
    return f"{len(keys)} key{'' if len(keys) == 1 else 's'} ({', '.join(parts)})"


def _under(key, modules):
    return any(key == m or key.startswith(m + ".") for m in modules)


def _shape_error(source, key, saved, wanted, num_classes):
    if HEAD_KEY.match(key) and saved[1:] == wanted[1:]:
        offset = 0 if num_classes is None else num_classes - wanted[0]
        return InputError(f"{source}: checkpoint has {saved[0]} classes ({key} {list(saved)}) "
                          f"but the network has {wanted[0]} — use --num_classes "
                          f"{saved[0] + offset}")
    return InputError(f"{source}: {key} is {list(saved)} in the checkpoint but {list(wanted)} "
                      "in the network — was it trained with another --width?")


def _key_error(source, own, state, missing, unexpected):
    saved_as, net_is = network_name(state), network_name(own)
    problems = "; ".join(f"{what} {summarise_keys(keys)}"
                         for what, keys in (("missing", missing), ("unexpected", unexpected))
                         if keys)
    if saved_as != net_is and saved_as is not None:
        return InputError(f"{source}: checkpoint looks like {saved_as}, but the network is "
                          f"{net_is or 'another one'} ({problems})")
    return InputError(f"{source}: checkpoint does not fit the network ({problems})")


def load_state(net, state, source, strict=True, num_classes=None, allow_missing=()):
    """Copy `state` into `net` (unwrapped from DDP) after the checks of `load_weights`;
    returns (missing keys, unexpected keys)."""
    model = unwrap_model(net)
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(OPTIONAL_SUFFIX)]
    unexpected = [k for k in state if k not in own]
    fatal_missing = [k for k in missing if not _under(k, allow_missing)]
    if strict and (fatal_missing or unexpected):
        raise _key_error(source, own, state, fatal_missing, unexpected)
    for key, value in own.items():
        if key in state and tuple(state[key].shape) != tuple(value.shape):
            raise _shape_error(source, key, tuple(state[key].shape), tuple(value.shape),
                               num_classes)
    if not set(own) & set(state):
        raise _key_error(source, own, state, missing, unexpected)
    model.load_state_dict(state, strict=False)
    return missing, unexpected


def load_report(source, state, missing, unexpected):
    line = f"{source}: loaded {len(state) - len(unexpected)} tensors"
    for what, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            line += f"; {what} {summarise_keys(keys)}"
    return line


def load_weights(net, path, strict=True, num_classes=None, allow_missing=()):
    """Load a checkpoint (`read_checkpoint`) into `net` and print one report line.

    strict: every network key must be in the checkpoint (except BatchNorm counters and
    keys under the module names in `allow_missing`, e.g. ("fc8",) for ImageNet weights),
    and no checkpoint key may be foreign. Shape mismatches are always errors.
    num_classes: the --num_classes value `net` was built with, so that a class-count error
    suggests the right value (AuxSegNet's fc8 has num_classes - 1 rows).
    Returns (missing keys, unexpected keys)."""
    path = os.fspath(path)
    state = read_checkpoint(path)
    missing, unexpected = load_state(net, state, path, strict, num_classes, allow_missing)
    print(load_report(path, state, missing, unexpected), flush=True)
    return missing, unexpected


def cpu_state_dict(net_or_state):
    """A plain state dict on the CPU (no `module.` prefix) from a network or a state dict."""
    state = net_or_state
    if isinstance(state, nn.Module):
        state = unwrap_model(state).state_dict()
    return {k: v.detach().cpu() for k, v in strip_ddp_prefix(state).items()}


def _save(path, obj, weights):
    """torch.save atomically, through a file object: the archive inside the zip is then
    always named "archive" (a file name would put the temporary name there), so identical
    contents give identical bytes. Non-finite `weights` are never written: RunError, and
    the file at `path` keeps what it held."""
    bad = first_non_finite(weights)
    if bad is not None:
        raise RunError(f"{path}: not saved, the weights hold NaN/Inf values ({bad}); the "
                       "training diverged (lower --lr?) and the file keeps its last finite "
                       "weights")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)


def save_checkpoint(path, state_dict):
    """Save a plain CPU state dict (or a network's) atomically with torch.save."""
    state = cpu_state_dict(state_dict)
    _save(path, state, state)


def save_training_state(path, model, optimizer, epoch, step, **extra):
    """Everything --resume needs, atomically: the model (plain keys), the optimizer state,
    the epoch and step reached, and `extra` (plain Python values or tensors)."""
    state = {"model": cpu_state_dict(model), "optimizer": optimizer.state_dict(),
             "epoch": int(epoch), "step": int(step), "extra": extra}
    _save(path, state, state["model"])


RESUME_AUTO = "auto"  # --resume without a value: the stage's own training state


def add_resume_arg(group, auto_state):
    """--resume [PATH]: a training state to continue from; the bare flag means
    `auto_state` (said in the help), see requested_training_state."""
    group.add_argument("--resume", nargs="?", const=RESUME_AUTO, default=None,
                       help=f"continue from a training state (no value: {auto_state}); when "
                            "none is saved yet, start fresh")


def requested_training_state(resume, auto_path, stage):
    """The training state --resume asks for (`auto_path` for the bare flag), or None for a
    fresh start: no --resume, or none saved yet (said on stdout)."""
    if not resume:
        return None
    return existing_training_state(auto_path if resume == RESUME_AUTO else resume, stage)


def existing_training_state(path, stage):
    """`path` when a training state is saved there; None (said on stdout) when there is
    none yet, so that --resume on a first run starts fresh."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    if os.path.exists(path):
        raise InputError(f"{path}: --resume: not a training state file")
    print(f"{stage}: --resume: no training state at {path} yet, starting fresh", flush=True)
    return None


def load_training_state(path, model, optimizer):
    """Restore `save_training_state` into model (plain or DDP-wrapped) and optimizer;
    returns {'epoch', 'step', 'extra'}."""
    path = os.fspath(path)
    saved = _torch_load(path)
    if not isinstance(saved, dict) or any(k not in saved for k in TRAINING_STATE_KEYS):
        raise InputError(f"{path}: not a training state file (needs keys "
                         f"{', '.join(TRAINING_STATE_KEYS)}; plain weights go to --weights)")
    load_state(model, state_dict_of(saved["model"], path), path)
    try:
        optimizer.load_state_dict(saved["optimizer"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: optimizer state does not fit this optimizer ({exc})") from None
    return {"epoch": saved["epoch"], "step": saved["step"], "extra": saved.get("extra", {})}
