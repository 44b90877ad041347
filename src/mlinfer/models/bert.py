"""BERT family (DistilBERT, bert-base...): sequence classification with ONNX Runtime and tokenizers.

The artifact folder (written by :mod:`mlinfer.build.bert_export` at image build time) holds
``model.onnx`` (graph-optimised, int8 when the accuracy guard allowed it), ``tokenizer.json`` and
``meta.json`` (labels, maximum length, the variant chosen and its guard figures). No torch at run time.

Speed comes from: fused attention/GELU/LayerNorm kernels, optional int8 weights, and batches sorted by
length and run in sub-batches of at most ``TOKENS_PER_RUN`` padded tokens, each padded only to its
longest text (dynamic padding), with threads set to the function's vCPU share.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np

from mlinfer.models.base import ModelAdapter
from mlinfer.models.ort_session import cpu_session
from mlinfer.runtime.errors import ModelLoadError
from mlinfer.runtime.items import validate_text

#: Texts longer than this (characters) are refused before tokenising; tokens are truncated at max_length.
MAX_CHARS = 100_000
#: Padded tokens per ONNX Runtime call. Short texts share a call (per-call overhead), long ones run alone, so
#: a sub-batch's activations stay in cache. Measured at int8 (docs/performance.md): 256 to 1,024 within 3 %
#: of each other on IMDb reviews and on short emotion texts; 4,096 costs 13 % more CPU, 16,384 39 % more.
TOKENS_PER_RUN = 1024


def sub_batches(lengths: list[int], budget: int = TOKENS_PER_RUN) -> list[list[int]]:
    """Indices sorted by length, cut so that each group's size x its longest length stays within ``budget``
    (a text longer than the budget runs alone)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups: list[list[int]] = []
    for i in order:
        if groups and (len(groups[-1]) + 1) * lengths[i] <= budget:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class BertAdapter(ModelAdapter):
    """Text classification with an exported ONNX graph."""

    family = "bert"

    def __init__(self, name: str, session: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
        super().__init__(name)
        self.session = session
        self.tokenizer = tokenizer
        self.meta = meta
        self.labels = [meta["id2label"][str(i)] for i in range(len(meta["id2label"]))]
        self.max_length = int(meta.get("max_length", 512))
        self.input_names = {i.name for i in session.get_inputs()}
        self.tokens_per_run = TOKENS_PER_RUN
        tokenizer.enable_truncation(self.max_length)
        tokenizer.no_padding()  # padding is per sub-batch, in logits()

    @classmethod
    def load(cls, path: Path, name: str) -> Self:
        from tokenizers import Tokenizer

        try:
            meta = json.loads((path / "meta.json").read_text())
            tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
            session = cpu_session(path / "model.onnx")
        except FileNotFoundError as exc:
            raise ModelLoadError(f"model {name!r}: no artifact at {path} ({exc.filename} missing)") from exc
        except Exception as exc:
            raise ModelLoadError(f"model {name!r}: cannot load {path}: {exc}") from exc
        return cls(name, session, tokenizer, meta)

    def validate(self, item: Mapping[str, Any]) -> str:
        return validate_text(item.get("text"), max_chars=MAX_CHARS)

    def encode(self, texts: list[str]) -> list[Any]:
        return self.tokenizer.encode_batch(texts)

    def logits(self, encodings: list[Any]) -> np.ndarray:
        """Logits for encodings in their given order, run in length-sorted, dynamically padded sub-batches."""
        out = np.zeros((len(encodings), len(self.labels)), dtype=np.float32)
        for chunk in sub_batches([len(e.ids) for e in encodings], self.tokens_per_run):
            width = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            out[chunk] = self.session.run(["logits"], feeds)[0]
        return out

    def predict(self, inputs: list[str], options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        if not inputs:
            return []
        encodings = self.encode(inputs)
        probs = softmax(self.logits(encodings))
        return [
            {
                "label": self.labels[int(p.argmax())],
                "score": round(float(p.max()), 6),
                "probabilities": {lab: round(float(v), 6) for lab, v in zip(self.labels, p, strict=True)},
                "tokens": len(enc.ids),
            }
            for p, enc in zip(probs, encodings, strict=True)
        ]
