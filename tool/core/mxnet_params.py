"""MXNet `.params` files without MXNet: `read_mxnet_params` decodes the NDArray-list
format (MXNet's `NDArray::Save/Load` in src/ndarray/ndarray.cc), and
`resnet38_state_dict_from_mxnet` renames the ImageNet ResNet-38 file of the originals
(`ilsvrc-cls_rna-a1_cls1000_ep-0001.params`) to this project's state-dict keys, as psa's
`convert_mxnet_to_torch` does.

File layout (little endian): uint64 list magic 0x112, uint64 reserved, uint64 array count,
the arrays, uint64 name count, then per name uint64 length + UTF-8 bytes. An array is
either legacy (uint32 ndim, uint32 dims, int32 dev_type, int32 dev_id, int32 dtype flag,
raw data), or starts with a uint32 magic: 0xF993FAC8 (int32 ndim + int64 dims, then as
legacy), 0xF993FAC9 / 0xF993FACA (int32 storage type, then as 0xF993FAC8; 0xFACA uses
NumPy shape semantics, where ndim 0 is a scalar and -1 an empty array)."""
import os
import re
import struct

import numpy as np

from tool.core.io import InputError

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA
DEFAULT_STORAGE = 0
MAX_NDIM = 32  # a larger "legacy ndim" means the bytes are not an array header
# mshadow type flags
DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32, 5: np.int8,
          6: np.int64, 7: np.bool_}


class _Stream:
    """Reads exact byte counts from a binary file; a short read is an InputError."""

    def __init__(self, f, path):
        self.f, self.path = f, path
        self.size = os.fstat(f.fileno()).st_size

    def raw(self, n):
        offset = self.f.tell()
        if n > self.size - offset:
            raise InputError(f"{self.path}: truncated MXNet params file "
                             f"(needed {n} bytes at offset {offset}, file has {self.size})")
        buf = bytearray(n)
        self.f.readinto(buf)
        return buf

    def unpack(self, fmt):
        fmt = "<" + fmt
        return struct.unpack(fmt, self.raw(struct.calcsize(fmt)))

    def one(self, fmt):
        return self.unpack(fmt)[0]


def _read_shape(stream, magic):
    """Shape tuple, or None for an empty ("none") NDArray."""
    if magic in (V1_MAGIC, V2_MAGIC, V3_MAGIC):
        ndim = stream.one("i")
        dims = stream.unpack(f"{max(ndim, 0)}q")
        if magic == V3_MAGIC:
            return None if ndim < 0 or min(dims, default=0) < 0 else dims
    else:
        ndim = magic
        if ndim > MAX_NDIM:
            raise InputError(f"{stream.path}: corrupt MXNet params file "
                             f"(unknown array header 0x{magic:08X})")
        dims = stream.unpack(f"{ndim}I")
    return None if ndim <= 0 else dims


def _read_array(stream, index):
    magic = stream.one("I")
    if magic in (V2_MAGIC, V3_MAGIC):
        storage = stream.one("i")
        if storage != DEFAULT_STORAGE:
            raise InputError(f"{stream.path}: array {index} uses sparse storage type {storage}, "
                             "only dense arrays are supported")
    shape = _read_shape(stream, magic)
    if shape is None:
        raise InputError(f"{stream.path}: array {index} is an empty NDArray without a shape")
    stream.unpack("ii")  # device type and id the array was saved from
    flag = stream.one("i")
    if flag not in DTYPES:
        raise InputError(f"{stream.path}: array {index} has unsupported dtype flag {flag}")
    dtype = np.dtype(DTYPES[flag])
    count = int(np.prod(shape, dtype=np.int64))
    data = np.frombuffer(stream.raw(count * dtype.itemsize), dtype=dtype.newbyteorder("<"))
    return data.astype(dtype, copy=False).reshape(shape)


def _read_name(stream):
    raw = stream.raw(stream.one("Q"))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{stream.path}: corrupt MXNet params file (a name is not UTF-8)"
                         ) from None


def read_mxnet_params(path):
    """{name: np.ndarray} in file order; names keep their `arg:`/`aux:` prefix."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot open MXNet params file ({exc.strerror})") from None
    with f:
        stream = _Stream(f, path)
        magic, _reserved = stream.unpack("QQ")
        if magic != LIST_MAGIC:
            raise InputError(f"{path}: not an MXNet params file "
                             f"(header 0x{magic:X}, expected 0x{LIST_MAGIC:X})")
        arrays = [_read_array(stream, i) for i in range(stream.one("Q"))]
        names = [_read_name(stream) for _ in range(stream.one("Q"))]
        if f.read(1):
            raise InputError(f"{path}: corrupt MXNet params file (data after the name list)")
    if len(names) != len(arrays):
        raise InputError(f"{path}: MXNet params file has {len(arrays)} arrays but "
                         f"{len(names)} names")
    if len(set(names)) != len(names):
        raise InputError(f"{path}: MXNet params file repeats a parameter name")
    return dict(zip(names, arrays))


# psa convert_mxnet_to_torch: BatchNorm tensors are named by their last `_` token.
BN_FIELDS = {"gamma": "weight", "beta": "bias", "mean": "running_mean", "var": "running_var"}
# `res4b1` / `bn4b1` → block b4_1; `res2a` / `bn2a` → block b2.
BLOCK_NAME = re.compile(r"^(res|bn)(\d)(?:a|b(\d))$")
STEM_NAME = "conv1a"
IMAGENET_HEAD = "linear1000"


def resnet38_key(mxnet_name):
    """This project's state-dict key for one ResNet-38 MXNet name (prefix stripped), None
    for the ImageNet classifier, or ValueError for a name that is not ResNet-38's."""
    tokens = mxnet_name.split("_")
    if tokens[0] == STEM_NAME:
        return "conv1a.weight"
    if tokens[0].startswith(IMAGENET_HEAD):
        return None
    if len(tokens) > 2 and tokens[1].startswith("branch"):
        match = BLOCK_NAME.match(tokens[0])
        if match is None:
            raise ValueError(mxnet_name)
        kind, stage, index = match.groups()
        block = f"b{stage}" if index is None else f"b{stage}_{index}"
        if kind == "res":
            return f"{block}.conv_{tokens[1]}.weight"
        return f"{block}.bn_{tokens[1]}.{_bn_field(mxnet_name, tokens)}"
    return f"bn7.{_bn_field(mxnet_name, tokens)}"


def _bn_field(mxnet_name, tokens):
    if tokens[-1] not in BN_FIELDS:
        raise ValueError(mxnet_name)
    return BN_FIELDS[tokens[-1]]


def strip_mxnet_prefix(name):
    return name.split(":", 1)[1] if name[:4] in ("arg:", "aux:") else name


def resnet38_state_dict_from_mxnet(params, source="MXNet params"):
    """{state-dict key: array} for `resnet38d.Net` from `read_mxnet_params` output;
    the ImageNet classifier (`linear1000*`) is dropped. `source` names the file in errors."""
    state = {}
    for name, value in params.items():
        try:
            key = resnet38_key(strip_mxnet_prefix(name))
        except ValueError:
            raise InputError(f"{source}: parameter '{name}' is not a ResNet-38 "
                             "(ilsvrc-cls_rna-a1_cls1000) name") from None
        if key is None:
            continue
        if key in state:
            raise InputError(f"{source}: parameters map twice onto '{key}' (second: '{name}')")
        state[key] = value
    return state
