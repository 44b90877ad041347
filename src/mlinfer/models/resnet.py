"""ResNet-50 image classification, whole or as one of its five stages (ONNX Runtime, Pillow, numpy).

The artifact folder (written at build time by :mod:`mlinfer.build.resnet_export`) holds ``model.onnx``
(the whole network), ``stage0.onnx`` .. ``stage4.onnx`` (stem; stages 1-3; stage 4 + pooling +
classifier) and ``meta.json`` (labels, preprocessing, the channels each stage takes). A function loads
only the graph it serves, so a stage function holds only its own weights.

Items:
- whole model and stage 0: ``{"id", "image": <base64 JPEG/PNG>}`` or ``{"id", "uri": "s3://..." | path}``;
- stages 1-4: ``{"id", "activation": ref}`` (see :mod:`mlinfer.models.activations`), or the previous
  stage's result line as is (``{"id", "result": {"activation": ref}}``); a line that carries an
  ``error`` fails again here with the same type, so every image is accounted for to the end.

Results: stages 0-3 ``{"activation": ref}`` (``options.activations`` = a folder or ``s3://`` prefix to
write the batch's tensor to, else inline); whole model and stage 4 ``{"top5": [{"class", "label",
"score"}]}``. ``options.encoding`` picks the activation encoding (default ``fp16``).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np

from mlinfer.models import activations as act
from mlinfer.models.base import ModelAdapter
from mlinfer.models.ort_session import cpu_session
from mlinfer.runtime.errors import ModelLoadError, SourceReadError
from mlinfer.runtime.items import ItemInputError
from mlinfer.runtime.storage import read_bytes, write_bytes

MAX_IMAGE_BYTES = 10_000_000
MAX_IMAGE_PIXELS = 40_000_000
TOP_K = 5


def graph_file(stage: int | None, precision: str = "fp32") -> str:
    name = "model.onnx" if stage is None else f"stage{stage}.onnx"
    return name.replace(".onnx", ".int8.onnx") if precision == "int8" else name


def precision_for(path: Path, stage: int | None) -> str:
    """``int8`` where the build kept int8 graphs (they passed the accuracy guard of
    :mod:`mlinfer.build.resnet_quantize`), else ``fp32``; ``RESNET_PRECISION=fp32`` forces fp32."""
    wanted = os.environ.get("RESNET_PRECISION", "int8").lower()
    if wanted not in {"int8", "fp32"}:
        raise ModelLoadError(f"RESNET_PRECISION must be int8 or fp32, got {wanted!r}")
    return "int8" if wanted == "int8" and (path / graph_file(stage, "int8")).exists() else "fp32"


def preprocess(data: bytes, meta: Mapping[str, Any]) -> np.ndarray:
    """Decode an image and prepare it as the model expects: RGB, resize the shorter side, center crop,
    scale to [0, 1], normalise with the ImageNet mean and std; returns float32 ``[3, crop, crop]``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise ItemInputError("ImageTooLarge", f"image is {img.width}x{img.height}; limit {MAX_IMAGE_PIXELS} px")
            img = img.convert("RGB")
            crop = int(meta["crop_size"])
            short = int(meta["resize_shortest"])
            w, h = img.size
            scale = short / min(w, h)
            img = img.resize((max(crop, round(w * scale)), max(crop, round(h * scale))), int(meta["resample"]))
            w, h = img.size
            left, top = (w - crop) // 2, (h - crop) // 2
            img = img.crop((left, top, left + crop, top + crop))
            pixels = np.asarray(img, dtype=np.float32) / 255.0
    except ItemInputError:
        raise
    except UnidentifiedImageError:
        raise ItemInputError("InvalidImage", "not a recognised image format (JPEG, PNG, WebP, ...)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:  # truncated or corrupt data
        raise ItemInputError("InvalidImage", f"cannot decode image: {exc}") from None
    pixels = (pixels - np.asarray(meta["mean"], np.float32)) / np.asarray(meta["std"], np.float32)
    return pixels.transpose(2, 0, 1).copy()


class ResNetAdapter(ModelAdapter):
    """The whole network (``stage=None``) or one stage of it, on ONNX Runtime."""

    family = "resnet"

    def __init__(self, name: str, session: Any, meta: dict[str, Any], stage: int | None) -> None:
        super().__init__(name)
        self.session = session
        self.meta = meta
        self.stage = stage
        self.labels: list[str] = meta["labels"]
        self.input_name = session.get_inputs()[0].name
        self._cached: tuple[str, np.ndarray] | None = None  # the batch object items of one batch share

    @classmethod
    def load(cls, path: Path, name: str) -> Self:
        from mlinfer.models.registry import get_spec

        stage = get_spec(name).options.get("stage")
        precision = precision_for(path, stage)
        try:
            meta = json.loads((path / "meta.json").read_text())
            session = cpu_session(path / graph_file(stage, precision))
        except FileNotFoundError as exc:
            raise ModelLoadError(f"model {name!r}: no artifact at {path} ({exc.filename} missing)") from exc
        except Exception as exc:
            raise ModelLoadError(f"model {name!r}: cannot load {path / graph_file(stage, precision)}: {exc}") from exc
        meta["precision"] = precision
        return cls(name, session, meta, stage)

    # -- input -------------------------------------------------------------------------------------
    def validate(self, item: Mapping[str, Any]) -> np.ndarray:
        if self.stage in (None, 0):
            return preprocess(self._image_bytes(item), self.meta)
        return self._activation(item)

    @staticmethod
    def _image_bytes(item: Mapping[str, Any]) -> bytes:
        if "image" in item:
            value = item["image"]
            if not isinstance(value, str) or not value:
                raise ItemInputError("InvalidType", "'image' must be a non-empty base64 string")
            if len(value) > MAX_IMAGE_BYTES * 4 // 3 + 4:
                raise ItemInputError("ImageTooLarge", f"'image' is over {MAX_IMAGE_BYTES} bytes")
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ItemInputError("InvalidBase64", f"'image' is not valid base64: {exc}") from None
        if "uri" in item:
            uri = item["uri"]
            if not isinstance(uri, str) or not uri:
                raise ItemInputError("InvalidType", "'uri' must be a non-empty string")
            try:
                data = read_bytes(uri)
            except SourceReadError as exc:
                raise ItemInputError("ImageReadError", str(exc)) from None
            if len(data) > MAX_IMAGE_BYTES:
                raise ItemInputError("ImageTooLarge", f"{uri} is {len(data)} bytes; limit {MAX_IMAGE_BYTES}")
            return data
        raise ItemInputError("MissingField", "item needs 'image' (base64) or 'uri'")

    def _activation(self, item: Mapping[str, Any]) -> np.ndarray:
        if isinstance(item.get("error"), Mapping):  # failed upstream: stays failed, reason kept
            upstream = item["error"]
            raise ItemInputError(str(upstream.get("type", "UpstreamError")), str(upstream.get("message", "")))
        ref = item.get("activation")
        if ref is None and isinstance(item.get("result"), Mapping):
            ref = item["result"].get("activation")
        if ref is None:
            raise ItemInputError("MissingField", f"stage {self.stage} needs 'activation' (from stage {self.stage - 1})")
        try:
            ref = act.check_ref(ref)
            encoding = ref.get("encoding", act.DEFAULT_ENCODING)
            if "data" in ref:
                tensor = act.decode(base64.b64decode(ref["data"], validate=True), encoding)
            else:
                tensor = self._batch_object(ref["uri"], encoding)
                if ref["index"] >= len(tensor):
                    raise ValueError(f"index {ref['index']} is outside {ref['uri']} ({len(tensor)} items)")
                tensor = tensor[ref["index"]]
        except SourceReadError as exc:
            raise ItemInputError("ActivationReadError", str(exc)) from None
        except Exception as exc:  # bad base64, zlib or .npy data, a malformed reference
            raise ItemInputError("InvalidActivation", f"{type(exc).__name__}: {exc}") from None
        channels = self.meta["stages"][self.stage]["in_channels"]
        if tensor.ndim != 3 or tensor.shape[0] != channels or min(tensor.shape) < 1:
            raise ItemInputError(
                "WrongShape", f"stage {self.stage} takes [{channels}, H, W] activations, got {list(tensor.shape)}"
            )
        if not np.isfinite(tensor).all():
            raise ItemInputError("NonFiniteValue", "activation has NaN or infinite values")
        return tensor

    def _batch_object(self, uri: str, encoding: str) -> np.ndarray:
        if self._cached is None or self._cached[0] != uri:
            self._cached = (uri, act.decode(read_bytes(uri), encoding))
        return self._cached[1]

    # -- predict -----------------------------------------------------------------------------------
    def predict(self, inputs: list[np.ndarray], options: Mapping[str, Any] | None = None) -> list[Any]:
        options = options or {}
        self._cached = None
        if not inputs:
            return []
        outputs: list[Any] = [None] * len(inputs)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(inputs):  # equal shapes run together (images always do)
            groups.setdefault(x.shape, []).append(i)
        for positions in groups.values():
            batch = np.stack([inputs[i] for i in positions])
            out = self.session.run(None, {self.input_name: batch})[0]
            if self.stage in (None, 4):
                for i, row in zip(positions, out, strict=True):
                    outputs[i] = {"top5": self.top_k(row)}
            else:
                for i, ref in zip(positions, self._activation_refs(out, options), strict=True):
                    outputs[i] = {"activation": ref}
        return outputs

    def top_k(self, logits: np.ndarray, k: int = TOP_K) -> list[dict[str, Any]]:
        z = logits.astype(np.float64) - logits.max()
        p = np.exp(z) / np.exp(z).sum()
        best = np.argsort(-p, kind="stable")[:k]
        return [{"class": int(c), "label": self.labels[c], "score": round(float(p[c]), 6)} for c in best]

    def _activation_refs(self, out: np.ndarray, options: Mapping[str, Any]) -> list[dict]:
        encoding = str(options.get("encoding", act.DEFAULT_ENCODING))
        prefix = options.get("activations")
        if not prefix:
            return [act.inline_ref(row, encoding) for row in out]
        body = act.encode(out, encoding)
        uri = act.batch_key(str(prefix), self.stage, body, encoding)
        write_bytes(uri, body, "application/octet-stream")
        shape = list(out.shape[1:])
        ref = {"uri": uri, "shape": shape, "encoding": encoding, "bytes": len(body)}
        return [{**ref, "index": j} for j in range(len(out))]
