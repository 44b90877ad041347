"""Compact encoding of intermediate activations passed between pipeline stages.

A ResNet-50 activation is far larger than a Step Functions state (256 KB) or a synchronous Lambda
payload (6 MB) allows: after stage 1 it is 256x56x56 floats, 3.2 MB per image in fp32. Stages therefore
write one object per batch (to S3 or a local folder) and pass a small reference per item:

    ref = {"uri": "s3://bucket/run/stage1/3f2a.npy", "index": 4, "shape": [256, 56, 56], "encoding": "fp16"}

With no place to write, a single item's tensor travels inline (``"data"``: base64), which is what the
sample events use. Encodings: ``fp32`` (exact), ``fp16`` (half the bytes, relative error ~1e-4; the
default), ``fp16+zlib`` (ReLU outputs are largely zeros: 40-47 % fewer bytes again, but at 6-15x the
CPU time, which costs more than the S3 time it saves; see ``benchmarks/resnet.py``), ``int8`` (a quarter
of fp32's bytes: uint8 codes with a scale and offset per image and channel, error at most half a step).
"""

from __future__ import annotations

import base64
import hashlib
import io
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

ENCODINGS = ("fp32", "fp16", "fp16+zlib", "int8")
DEFAULT_ENCODING = "fp16"
SUFFIX = {"fp32": ".npy", "fp16": ".npy", "fp16+zlib": ".npy.z", "int8": ".npz"}


def _encode_int8(array: np.ndarray) -> bytes:
    """Affine uint8 codes per image and channel (the axes after the first two are reduced)."""
    x = np.asarray(array, dtype=np.float32)
    axes = tuple(range(2, x.ndim)) or None
    lo, hi = x.min(axis=axes, keepdims=True), x.max(axis=axes, keepdims=True)
    scale = np.where(hi > lo, (hi - lo) / 255.0, 1.0).astype(np.float32)
    codes = np.rint((x - lo) / scale).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    np.savez(buf, codes=codes, lo=lo.astype(np.float32), scale=scale)
    return buf.getvalue()


def _decode_int8(body: bytes) -> np.ndarray:
    with np.load(io.BytesIO(body), allow_pickle=False) as z:
        return z["codes"].astype(np.float32) * z["scale"] + z["lo"]


def encode(array: np.ndarray, encoding: str = DEFAULT_ENCODING) -> bytes:
    """``array`` as bytes in ``encoding`` (an ``.npy`` body, zlib-compressed for ``fp16+zlib``)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown activation encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")
    if encoding == "int8":
        return _encode_int8(array)
    dtype = np.float32 if encoding == "fp32" else np.float16
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=dtype), allow_pickle=False)
    body = buf.getvalue()
    return zlib.compress(body, 1) if encoding.endswith("zlib") else body


def decode(data: bytes, encoding: str = DEFAULT_ENCODING) -> np.ndarray:
    """The float32 array encoded by :func:`encode`."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown activation encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")
    if encoding == "int8":
        return _decode_int8(data)
    body = zlib.decompress(data) if encoding.endswith("zlib") else data
    return np.load(io.BytesIO(body), allow_pickle=False).astype(np.float32, copy=False)


def batch_key(prefix: str, stage: int, body: bytes, encoding: str) -> str:
    """Where stage ``stage``'s output for one batch goes, named by its content: a retried batch
    overwrites its own object and never adds a second one."""
    digest = hashlib.sha1(body).hexdigest()[:24]
    return f"{prefix.rstrip('/')}/stage{stage}/{digest}{SUFFIX[encoding]}"


def inline_ref(array: np.ndarray, encoding: str = DEFAULT_ENCODING) -> dict[str, Any]:
    """A reference carrying one item's tensor itself (base64)."""
    return {
        "data": base64.b64encode(encode(array, encoding)).decode(),
        "shape": list(array.shape),
        "encoding": encoding,
    }


def check_ref(ref: Any) -> Mapping[str, Any]:
    """Raise ``ValueError`` unless ``ref`` is a well-formed reference (``uri`` + ``index``, or ``data``)."""
    if not isinstance(ref, Mapping):
        raise ValueError(f"'activation' must be an object, got {type(ref).__name__}")
    if ref.get("encoding", DEFAULT_ENCODING) not in ENCODINGS:
        raise ValueError(f"'activation.encoding' must be one of {', '.join(ENCODINGS)}")
    if "data" in ref:
        if not isinstance(ref["data"], str):
            raise ValueError("'activation.data' must be a base64 string")
        return ref
    if not isinstance(ref.get("uri"), str) or not ref["uri"]:
        raise ValueError("'activation' needs 'uri' (with 'index') or inline 'data'")
    index = ref.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError("'activation.index' must be a non-negative integer")
    return ref
