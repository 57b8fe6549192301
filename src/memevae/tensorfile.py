"""Files of tensors and JSON with no code in them: the format of memevae's checkpoints, GP
classifiers and judges. Reading one never runs code, whoever wrote the file.

A file is one ASCII header line followed by a payload::

    memevae <kind> <format> sha256=<64 hex digits>\\n
    <payload: a safetensors file>

``kind`` says what the file holds ("checkpoint", "gp-classifier", "judge"), ``format`` the
version of that kind's layout, ``sha256`` the digest of the payload. A reader checks the header
line and the digest before it parses a byte of the payload; the payload is then parsed by the
safetensors library (tensors with a dtype, a shape and raw bytes; its header is JSON), never by
``pickle``.

The object stored (a nested state such as a checkpoint) is split into its tensors, named "0",
"1", ... in the safetensors file, and a JSON *skeleton* stored in the safetensors metadata under
"memevae", in which every value is one of:

- ``null``, ``true``/``false``, an integer, a string, a finite float, or a list of values: itself;
- ``{"float": "nan" | "inf" | "-inf"}``: a non-finite float;
- ``{"tuple": [values]}``: a tuple;
- ``{"dict": {string: value}}``: a dict whose keys are all strings; ``{"pairs": [[key, value],
  ...]}``: any other dict (keys are values too, so integer keys stay integers). Either may carry
  ``"metadata": value``: a ``state_dict``'s ``_metadata`` (the module versions
  ``load_state_dict`` reads); the dict is then rebuilt as an ``OrderedDict`` holding it;
- ``{"tensor": name}``: a torch tensor; ``{"ndarray": name}``: a numpy array (e.g. in
  ``numpy.random.get_state()``), stored as a tensor of its dtype. A tensor laid out in memory in
  another order than its dimensions (e.g. ``channels_last``) is stored in memory order with
  ``"permute": [dimensions in memory order]`` and rebuilt as the view with its original strides.

So a state is rebuilt exactly: tuples stay tuples, integers integers, floats bit-for-bit
(including nan, inf and -0.0), tensors with their dtype, values and memory layout (an optimiser's
moments keep their parameters' layout, which its fused update depends on).

Files of earlier memevae versions are torch pickles; :func:`load_legacy` reads them only through
torch's allow-listed loader (``weights_only=True``), which refuses a pickle that would build
anything but tensors and plain containers (:class:`UnsafeFileError`).
"""

from __future__ import annotations

import collections
import hashlib
import io as _io
import json
import math
import pickle
import re
import warnings
from pathlib import Path

import torch

from . import io

MAGIC = b"memevae "
_HEADER = re.compile(rb"memevae ([a-z][a-z-]{0,39}) ([0-9]{1,6}) sha256=([0-9a-f]{64})\n")
_SKELETON = "memevae"
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class FileFormatError(ValueError):
    """A file is not a readable memevae tensor file (damaged, truncated, of another kind or format)."""


class UnsafeFileError(FileFormatError):
    """A pickle that torch's allow-listed loader refuses: it would build more than tensors and
    plain values, so it is not loaded at all."""


# -- the skeleton --------------------------------------------------------------------------------

def encode(obj) -> tuple[object, dict[str, torch.Tensor]]:
    """``obj`` as (JSON skeleton, {name: tensor}); TypeError for a value the format cannot hold.

    >>> encode({"epoch": 3, 0: (1.5, float("nan")), "w": torch.ones(2)})
    ({'pairs': [['epoch', 3], [0, {'tuple': [1.5, {'float': 'nan'}]}], ['w', {'tensor': '0'}]]}, {'0': tensor([1., 1.])})
    """
    tensors: dict[str, torch.Tensor] = {}

    def add(tag: str, tensor: torch.Tensor) -> dict:
        name, tensor = str(len(tensors)), tensor.detach().to("cpu")
        order = sorted(range(tensor.dim()), key=lambda d: -tensor.stride(d))  # its dimensions in memory order
        dense = order != list(range(tensor.dim())) and tensor.permute(order).is_contiguous()
        tensors[name] = (tensor.permute(order) if dense else tensor).clone(memory_format=torch.contiguous_format)
        return {tag: name, "permute": order} if dense else {tag: name}

    def node(value):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value) if math.isfinite(value) else {"float": str(float(value))}
        if isinstance(value, list):
            return [node(v) for v in value]
        if isinstance(value, tuple):
            return {"tuple": [node(v) for v in value]}
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value):
                out = {"dict": {k: node(v) for k, v in value.items()}}
            else:
                out = {"pairs": [[node(k), node(v)] for k, v in value.items()]}
            if getattr(value, "_metadata", None) is not None:
                out["metadata"] = node(value._metadata)
            return out
        if isinstance(value, torch.Tensor):
            return add("tensor", value)
        if type(value).__module__ == "numpy" and type(value).__name__ == "ndarray":
            return add("ndarray", torch.from_numpy(value))
        raise TypeError(f"a memevae tensor file cannot hold a {type(value).__name__} ({value!r:.60})")

    return node(obj), tensors


def decode(skeleton, tensors: dict[str, torch.Tensor]):
    """The object :func:`encode` split into ``skeleton`` and ``tensors``; FileFormatError naming
    the first entry that is not of the format."""
    def node(value):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, list):
            return [node(v) for v in value]
        if not isinstance(value, dict):
            raise FileFormatError(f"its structure holds a {type(value).__name__}")
        keys = set(value)
        if keys == {"float"} and isinstance(value["float"], str) and value["float"] in _NON_FINITE:
            return _NON_FINITE[value["float"]]
        if keys == {"tuple"} and isinstance(value["tuple"], list):
            return tuple(node(v) for v in value["tuple"])
        if keys - {"permute"} in ({"tensor"}, {"ndarray"}):
            tag = "tensor" if "tensor" in keys else "ndarray"
            name = value[tag]
            if not isinstance(name, str) or name not in tensors:
                raise FileFormatError(f"its structure names a tensor {name!r} that it does not hold")
            tensor = tensors[name]
            if "permute" in value:  # stored in memory order: the view with the original strides
                order = value["permute"]
                if not isinstance(order, list) or sorted(order) != list(range(tensor.dim())):
                    raise FileFormatError(f"its structure gives tensor {name} the dimension order {order!r}")
                tensor = tensor.permute(sorted(range(tensor.dim()), key=order.__getitem__))
            return tensor if tag == "tensor" else tensor.cpu().numpy()
        if keys - {"metadata"} == {"dict"} and isinstance(value["dict"], dict):
            items = [(k, node(v)) for k, v in value["dict"].items()]
        elif keys - {"metadata"} == {"pairs"} and isinstance(value["pairs"], list) \
                and all(isinstance(p, list) and len(p) == 2 for p in value["pairs"]):
            items = [(node(k), node(v)) for k, v in value["pairs"]]
        else:
            raise FileFormatError(f"its structure has an entry of no known kind: {json.dumps(value)[:80]}")
        try:
            rebuilt = dict(items) if "metadata" not in value else collections.OrderedDict(items)
        except TypeError as error:  # e.g. a list as a key
            raise FileFormatError(f"its structure has a dict with an unusable key ({error})") from None
        if "metadata" in value:
            rebuilt._metadata = node(value["metadata"])
        return rebuilt

    try:
        return node(skeleton)
    except RecursionError:
        raise FileFormatError("its structure is nested too deeply") from None


# -- files ---------------------------------------------------------------------------------------

def dumps(obj, kind: str, format: int) -> bytes:
    """The bytes of a file of ``kind`` and ``format`` holding ``obj`` (see the module docstring)."""
    from safetensors.torch import save

    skeleton, tensors = encode(obj)
    payload = save(tensors, metadata={_SKELETON: json.dumps(skeleton, allow_nan=False, separators=(",", ":"))})
    header = MAGIC + f"{kind} {format} sha256={hashlib.sha256(payload).hexdigest()}\n".encode("ascii")
    if not _HEADER.fullmatch(header):
        raise ValueError(f"{kind!r} / {format!r} cannot name a memevae tensor file")
    return header + payload


def write(path, obj, kind: str, format: int) -> Path:
    """Write ``obj`` to ``path`` atomically (:func:`memevae.io.atomic_write`) as :func:`dumps` gives it."""
    data = dumps(obj, kind, format)
    return io.atomic_write(path, lambda f: f.write(data))


def is_tensor_file(data: bytes) -> bool:
    """Whether ``data`` starts as a memevae tensor file does (as opposed to an older torch pickle)."""
    return data.startswith(MAGIC)


def loads(data: bytes, kind: str, format: int, map_location=None):
    """The object in the bytes of a file of ``kind`` and ``format``, its tensors moved to
    ``map_location`` (a device; None keeps them on the CPU). FileFormatError, in words, when the
    header line is not one, names another kind or format, or the payload does not match its
    sha256 (checked before the payload is parsed), or the payload is not of the format."""
    from safetensors.torch import load

    header = _HEADER.match(data[:200])
    if header is None:
        raise FileFormatError("it does not start with a memevae file header")
    found_kind, found_format, digest = header[1].decode(), int(header[2]), header[3].decode()
    if found_kind != kind:
        raise FileFormatError(f"it holds a memevae {found_kind}, not a {kind}")
    if found_format != format:
        raise FileFormatError(f"it is a {kind} of format {found_format}; this memevae reads format {format}")
    payload = memoryview(data)[header.end():]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise FileFormatError("its contents do not match their sha256: the file was damaged after it was written")
    try:
        tensors = load(bytes(payload))
        skeleton = json.loads(_metadata(payload)[_SKELETON], parse_constant=_refuse_constant)
    except Exception as error:  # whatever the parsers say of bytes that are not of the format
        raise FileFormatError(f"its payload is not of the format ({type(error).__name__}: {_first_line(error)})") from None
    if map_location is not None:
        tensors = {name: tensor.to(map_location) for name, tensor in tensors.items()}
    return decode(skeleton, tensors)


def _metadata(payload) -> dict:
    """The metadata of a safetensors file (its header: an 8-byte little-endian length, then JSON)."""
    length = int.from_bytes(payload[:8], "little")
    return json.loads(bytes(payload[8:8 + length]))["__metadata__"]


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not strict JSON")


def load_legacy(data: bytes, map_location=None):
    """The object in an older memevae file (a torch pickle), read only with torch's allow-listed
    loader (``torch.load(weights_only=True)``): UnsafeFileError when that loader refuses it,
    FileFormatError when the bytes are no torch file at all or cannot be read."""
    if not (data.startswith(b"PK\x03\x04") or data.startswith(b"\x80")):  # a torch zip archive, or a bare pickle
        raise FileFormatError("it cannot be read: it is neither a memevae tensor file nor a torch file")
    try:
        with warnings.catch_warnings():  # e.g. about the pickle protocol: the error below says what matters
            warnings.simplefilter("ignore")
            return torch.load(_io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        reason = re.search(r"WeightsUnpickler error:\s*([^\n]+?)(?: Please use|\n|$)", str(error))
        raise UnsafeFileError(f"it is a pickle of more than tensors and plain values, refused by torch's weights-only "
                              f"loader: {(reason[1] if reason else _first_line(error)).strip().rstrip('.')}") from None
    except Exception as error:  # a damaged archive or a truncated pickle
        raise FileFormatError(f"it cannot be read: {type(error).__name__}: {_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def describe(error: BaseException) -> str:
    """One line for an error met while rebuilding an object from a file: a FileFormatError's own
    words, otherwise the error's type and first line (e.g. ``load_state_dict``'s shape mismatch)."""
    return str(error) if isinstance(error, FileFormatError) else f"{type(error).__name__}: {_first_line(error)}"


__all__ = ["FileFormatError", "UnsafeFileError", "encode", "decode", "dumps", "loads", "write", "is_tensor_file",
           "load_legacy", "describe"]
