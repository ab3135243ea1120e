"""Request tensors from gRPC TensorProtos and REST JSON, checked before anything large is built."""

from __future__ import annotations

import json
import math
from typing import Mapping

import numpy as np

from serving.models import ServingError

MAX_RANK = 32  # numpy's limit is 64; no signature here takes more than 3
STRING_OVERHEAD = 8  # bytes a string element costs besides its text: one pointer of an array

# TensorProto dtype numbers (tensorflow/core/framework/types.proto) this server accepts →
# (name, numpy dtype, the repeated field that holds the values)
DTYPES = {1: ("float32", np.float32, "float_val"), 2: ("float64", np.float64, "double_val"),
          3: ("int32", np.int32, "int_val"), 4: ("uint8", np.uint8, "int_val"),
          5: ("int16", np.int16, "int_val"), 6: ("int8", np.int8, "int_val"),
          7: ("string", object, "string_val"), 9: ("int64", np.int64, "int64_val"),
          10: ("bool", np.bool_, "bool_val"), 17: ("uint16", np.uint16, "int_val"),
          19: ("float16", np.float16, "half_val"), 22: ("uint32", np.uint32, "uint32_val"),
          23: ("uint64", np.uint64, "uint64_val")}


def _bad(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def _short(value) -> str:
    """A JSON leaf (never a list) as the error message quotes it."""
    if isinstance(value, dict):  # may hold anything, nested deeply: not worth quoting
        return "an object"
    text = value.text if isinstance(value, _Huge) else json.dumps(value)
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} characters)"


def tensors_from_protos(protos: Mapping, max_bytes: int) -> dict[str, np.ndarray]:
    """The arrays of a PredictRequest's `inputs`, each checked against its declared shape.

    Every check runs on the proto before an array is built: a repeated *_val field holds one value
    per element or a single value for all of them (TensorFlow's broadcast); tensor_content holds
    exactly the elements' bytes; and the arrays together may take at most `max_bytes` (a string
    counts its length plus 8 bytes).

    Args:
        protos: input name → TensorProto.
        max_bytes: the cap on the arrays' total size (the server's --max-request-bytes).

    Returns:
        Input name → numpy array (strings as an object array of bytes).

    Raises:
        ServingError: INVALID_ARGUMENT naming the input and what is wrong.
    """
    out, used = {}, 0
    for key, proto in protos.items():
        nbytes = _expanded_bytes(key, proto, max_bytes)
        if used + nbytes > max_bytes:
            dims = [d.size for d in proto.tensor_shape.dim]
            raise _bad(f"input {key}: {dims} {DTYPES[proto.dtype][0]} takes {nbytes} bytes"
                       f"{f' after {used} for the inputs before it' if used else ''}; this "
                       f"server takes at most {max_bytes} per request (--max-request-bytes)")
        used += nbytes
        out[key] = _array(key, proto)
    return out


def _expanded_bytes(key: str, proto, max_bytes: int) -> int:
    """The size of the array `proto` declares, once its shape and content are known to agree."""
    if proto.dtype not in DTYPES:
        raise _bad(f"input {key}: dtype {_dtype_name(proto.dtype)} is not supported (one of "
                   f"{', '.join(name for name, _, _ in DTYPES.values())})")
    name, dtype, field = DTYPES[proto.dtype]
    if proto.tensor_shape.unknown_rank:
        raise _bad(f"input {key}: unknown rank; give the tensor's shape")
    dims = [d.size for d in proto.tensor_shape.dim]
    if len(dims) > MAX_RANK:
        raise _bad(f"input {key}: rank {len(dims)} is over {MAX_RANK}")
    if any(d < 0 for d in dims):
        raise _bad(f"input {key}: shape {dims} has a negative size")
    count = math.prod(dims)  # a Python int: no overflow
    # numpy refuses a shape whose nonzero sizes multiply past 2**63, even holding no element
    if count == 0 and math.prod(d for d in dims if d) > max_bytes:
        raise _bad(f"input {key}: shape {dims} holds no element, yet its other sizes multiply "
                   f"past this server's cap of {max_bytes} (--max-request-bytes)")
    if proto.tensor_content:
        if dtype is object:
            raise _bad(f"input {key}: string tensors carry string_val, not tensor_content")
        need = count * np.dtype(dtype).itemsize
        if len(proto.tensor_content) != need:
            raise _bad(f"input {key}: tensor_content holds {len(proto.tensor_content)} bytes; "
                       f"{dims} {name} needs {need}")
        return need
    values = getattr(proto, field)
    if len(values) != count and not (len(values) == 1 and count > 1):
        raise _bad(f"input {key}: {field} holds {len(values)} values; {dims} {name} needs "
                   f"{count} (or 1 for all)")
    if dtype is not object:
        return count * np.dtype(dtype).itemsize
    if len(values) == count:
        return count * STRING_OVERHEAD + sum(map(len, values))
    return count * (STRING_OVERHEAD + len(values[0]))


def _dtype_name(number: int) -> str:
    from tensorflow.core.framework import types_pb2

    try:
        return types_pb2.DataType.Name(number)
    except ValueError:
        return str(number)


def _array(key: str, proto) -> np.ndarray:
    name, dtype, field = DTYPES[proto.dtype]
    dims = [d.size for d in proto.tensor_shape.dim]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype).reshape(dims)
    values = getattr(proto, field)
    try:  # fromiter, not asarray: asarray of a repeated field wraps 300 to 44 in a uint8
        if dtype is np.float16:  # half_val holds the bits
            values = np.fromiter(values, np.uint16, len(values)).view(np.float16)
        else:
            values = np.fromiter(values, dtype, len(values))
    except (OverflowError, ValueError) as exc:
        raise _bad(f"input {key}: a value does not fit {name} ({exc})") from None
    if values.size == 1 and math.prod(dims) != 1:
        return np.full(dims, values[0], dtype)
    return values.reshape(dims)


# --- REST: JSON ---------------------------------------------------------------------------------

class _Huge:
    """A JSON number past float64 (or past 40 digits): kept as its text, refused by every input
    with the input's name, where `json` would give inf or a ValueError."""

    def __init__(self, text: str):
        self.text = text


def _float(text: str):
    value = float(text)
    return _Huge(text) if math.isinf(value) else value


def _int(text: str):
    return int(text) if len(text.lstrip("-")) <= 40 else _Huge(text)


def loads(body: bytes):
    """The parsed JSON body; NaN and Infinity are accepted as TF Serving does.

    Raises:
        ServingError: INVALID_ARGUMENT for a body that is not JSON or is nested too deeply to
            parse.
    """
    try:
        return json.loads(body or b"{}", parse_float=_float, parse_int=_int)
    except RecursionError:
        raise _bad("body is nested too deeply to parse (lists within lists)") from None
    except ValueError as exc:  # also UnicodeDecodeError
        raise _bad(f"body is not JSON: {exc}") from None


def json_inputs(specs: Mapping, request: dict) -> dict[str, np.ndarray]:
    """A :predict body's inputs (columnar `inputs` or row `instances`) as arrays of the
    signature's dtypes.

    Args:
        specs: input name → its TensorSpec (a dtype and a shape) in the signature.
        request: the parsed body.

    Returns:
        Input name → array; an input the signature lacks maps to an empty array (for
        `Servable.check` to name).

    Raises:
        ServingError: INVALID_ARGUMENT naming the input, for a value of the wrong type, out of its
            dtype's range, nested deeper than its rank, or ragged.
    """
    if "instances" in request and "inputs" in request:
        raise _bad('the body has "inputs" or "instances", not both')
    if "instances" in request:
        rows = request["instances"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise _bad('"instances": a list of objects, one per row')
        keys = set(rows[0]) if rows else set()
        if any(set(r) != keys for r in rows):
            raise _bad('"instances": every row has the same inputs')
        columns = {k: [r[k] for r in rows] for k in keys}
    else:
        columns = request.get("inputs")
        if not isinstance(columns, dict):
            raise _bad('expected {"inputs": {NAME: value, ...}}')
    out = {}
    for key, value in columns.items():
        spec = specs.get(key)
        out[key] = np.zeros(0, object) if spec is None else json_array(key, value, spec)
    return out


def json_array(key: str, value, spec) -> np.ndarray:
    """One input's JSON value as an array of `spec`'s dtype.

    Raises:
        ServingError: INVALID_ARGUMENT naming `key`.
    """
    rank = spec.shape.rank
    limit = MAX_RANK if rank is None else rank
    leaves, depth, stack = [], 0, [(value, 0)]
    while stack:  # a loop, not recursion: the body's nesting is the client's choice
        item, level = stack.pop()
        if isinstance(item, list):
            if level >= limit:
                raise _bad(f"input {key}: lists nested deeper than its rank {limit}")
            stack.extend((x, level + 1) for x in item)
            depth = max(depth, level + 1)
        else:
            leaves.append(item)
    if spec.dtype.name == "string":
        return _strings(key, value, leaves, depth)
    dtype = np.dtype(spec.dtype.as_numpy_dtype)
    for leaf in leaves:
        _check_number(key, leaf, dtype)
    try:
        return np.asarray(value, dtype)
    except (OverflowError, ValueError, TypeError) as exc:
        raise _bad(f"input {key}: {_ragged(exc)}") from None


def _ragged(exc: Exception) -> str:
    text = str(exc)
    return "lists of different lengths (ragged)" if "inhomogeneous" in text else text


def _check_number(key: str, leaf, dtype: np.dtype) -> None:
    if dtype.kind == "b":
        if not isinstance(leaf, bool):
            raise _bad(f"input {key}: expected true or false, got {_short(leaf)}")
        return
    if isinstance(leaf, bool) or not isinstance(leaf, (int, float, _Huge)):
        raise _bad(f"input {key}: expected numbers, got {_short(leaf)}")
    if dtype.kind in "iu":
        if not isinstance(leaf, (int, _Huge)):
            raise _bad(f"input {key}: expected whole numbers, got {_short(leaf)}")
        info = np.iinfo(dtype)
        if isinstance(leaf, _Huge) or not info.min <= leaf <= info.max:
            raise _bad(f"input {key}: {_short(leaf)} is out of {dtype.name} range "
                       f"[{info.min}, {info.max}]")
    elif isinstance(leaf, _Huge) or (not (isinstance(leaf, float) and math.isinf(leaf))
                                     and abs(leaf) > float(np.finfo(dtype).max)):
        raise _bad(f"input {key}: {_short(leaf)} is out of {dtype.name} range "
                   f"(+-{float(np.finfo(dtype).max):.4g})")


def _strings(key: str, value, leaves: list, depth: int) -> np.ndarray:
    for leaf in leaves:
        if not isinstance(leaf, str):
            raise _bad(f"input {key}: expected strings, got {_short(leaf)}")
    array = np.array(value, dtype=object)  # never a fixed-width "U" array: one long string
    if array.ndim != depth:               # would widen every element to its length
        raise _bad(f"input {key}: lists of different lengths (ragged)")
    flat = array.reshape(-1)
    try:
        for i, text in enumerate(flat):
            flat[i] = text.encode()
    except UnicodeEncodeError:
        raise _bad(f"input {key}: a string is not valid Unicode (a lone surrogate)") from None
    return array
