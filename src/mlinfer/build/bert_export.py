"""Build-time tool (needs torch): export a BERT-family classifier to ONNX, optimise, quantise, guard.

    python -m mlinfer.build.bert_export --model distilbert-base-uncased-finetuned-sst-2-english \
        --out /opt/ml/model/distilbert --guard-data imdb.jsonl

``--model`` is a Hugging Face id (fetched now, at build time) or a local directory; either way it is read
with ``from_pretrained``. Candidates: ``opt`` (fp32 with fused attention, GELU and LayerNorm) and
``int8`` (``opt`` with dynamic int8 weights), both with a last layer that computes only the [CLS]
position the classifier reads (exact; ``--full-last-layer`` to keep all). The accuracy guard compares
each candidate's predictions with the fp32 PyTorch model's on the guard texts; the fastest candidate
that agrees on at least ``--min-agreement`` of them is shipped as ``model.onnx``, and a model for which
no candidate passes is not exported at all.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

MIN_AGREEMENT = 0.99
DEFAULT_GUARD_TEXTS = [
    "A wonderful, moving film with superb performances.",
    "Dull, predictable and far too long. I wanted my money back.",
    "It was fine. Nothing special, but not bad either.",
    "The plot made no sense and the acting was wooden.",
    "One of the best movies I have seen this year!",
]


def _reference_logits(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 16):
            enc = tokenizer(
                texts[i : i + 16], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            )
            out.append(model(**enc).logits.numpy())
    return np.concatenate(out)


def _attend_cls(q: Any, k: Any, v: Any, mask: Any, scaling: float) -> Any:
    """Attention of the [CLS] query (batch, heads, 1, head) over all keys; ``mask`` is the additive or boolean
    mask the encoder built for every query, of which the first row is the [CLS] row."""
    import torch

    scores = (q @ k.transpose(-1, -2)) * scaling
    if mask is not None:
        mask = mask[..., :1, :]
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min) if mask.dtype == torch.bool else scores + mask
    return scores.softmax(-1) @ v


def _cls_only_last_layer(model: Any) -> bool:
    """Make the last encoder layer compute the [CLS] position only, the one the classifier reads: its keys
    and values still come from every token, but the query, output projection, LayerNorms and feed-forward
    run on one position instead of all. Exact (the same function), it saves 10 of each token's 12 x layers
    dim-squared weight FLOPs: 14 % for 6 layers (DistilBERT), 7 % for 12 (BERT-base). DistilBERT and BERT
    layouts. Returns False, changing nothing, for other architectures."""
    from torch import nn

    class ClsOnlyLayer(nn.Module):
        """One layer, its parts named per layout: ``qkv`` the projections, ``attention_out(out, residual)``
        and ``feed_forward(x)`` the rest of the layer after attention, each with its residual and norm."""

        def __init__(self, layer: nn.Module, attn: nn.Module, qkv: tuple, attention_out: Any, feed_forward: Any):
            super().__init__()
            self.layer, self.attn, self.qkv = layer, attn, qkv  # layer: keeps its parameters in the model
            self.attention_out, self.feed_forward = attention_out, feed_forward

        def forward(self, hidden_states: Any, attention_mask: Any = None, *_: Any, **__: Any) -> Any:
            cls, size = hidden_states[:, :1], self.attn.attention_head_size
            q, k, v = (lin(x).view(x.shape[0], x.shape[1], -1, size).transpose(1, 2)
                       for lin, x in zip(self.qkv, (cls, hidden_states, hidden_states), strict=True))  # fmt: skip
            out = _attend_cls(q, k, v, attention_mask, self.attn.scaling).transpose(1, 2).flatten(2)
            return self.feed_forward(self.attention_out(out, cls))

    config = model.config
    if config.model_type == "distilbert" and hasattr(model, "distilbert"):
        layers = model.distilbert.transformer.layer
        block, attn = layers[-1], layers[-1].attention
        layers[-1] = ClsOnlyLayer(
            block, attn, (attn.q_lin, attn.k_lin, attn.v_lin),
            lambda out, cls: block.sa_layer_norm(attn.out_lin(out) + cls),
            lambda x: block.output_layer_norm(block.ffn(x) + x),
        )  # fmt: skip
    elif config.model_type == "bert" and hasattr(model, "bert") and not config.is_decoder:
        layers = model.bert.encoder.layer
        layer, attn = layers[-1], layers[-1].attention.self
        layers[-1] = ClsOnlyLayer(
            layer, attn, (attn.query, attn.key, attn.value),
            layer.attention.output,  # dense, dropout, residual and LayerNorm
            lambda x: layer.output(layer.intermediate(x), x),
        )  # fmt: skip
    else:
        return False
    return True


def _export_onnx(model: Any, tokenizer: Any, path: Path) -> list[str]:
    from mlinfer.build.onnx_export import export_onnx

    enc = tokenizer(["an example sentence", "another, longer example sentence here"], padding=True, return_tensors="pt")
    accepted = inspect.signature(model.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc and n in accepted]
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    export_onnx(
        model, ({n: enc[n] for n in names},), path, input_names=names, output_names=["logits"],
        dynamic_axes=axes, opset_version=17, do_constant_folding=True,
    )  # fmt: skip
    return names


def _optimise(src: Path, dst: Path, config: Any) -> None:
    from onnxruntime.transformers import optimizer

    heads = getattr(config, "num_attention_heads", None) or config.n_heads
    hidden = getattr(config, "hidden_size", None) or config.dim
    opt = optimizer.optimize_model(str(src), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1)
    opt.save_model_to_file(str(dst))


def _quantise(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Fused contrib ops (Attention, FastGelu...) defeat shape inference; their outputs are float.
    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, extra_options=extra)


def _candidate_logits(
    path: Path, tokenizer_file: Path, texts: list[str], max_length: int, labels: int
) -> tuple[np.ndarray, float]:
    from mlinfer.models.bert import BertAdapter

    meta = {"id2label": {str(i): str(i) for i in range(labels)}, "max_length": max_length}
    import onnxruntime as ort
    from tokenizers import Tokenizer

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    adapter = BertAdapter("guard", session, Tokenizer.from_file(str(tokenizer_file)), meta)
    t0 = time.perf_counter()
    logits = adapter.logits(adapter.encode(texts))
    return logits, time.perf_counter() - t0


def export(
    model_ref: str,
    out: Path,
    guard_texts: list[str] | None = None,
    quantize: str = "auto",
    max_length: int = 512,
    min_agreement: float = MIN_AGREEMENT,
    keep_candidates: bool = False,
    cls_only: bool = True,
) -> dict[str, Any]:
    """Export, optimise, guard and write the artifact folder; return its ``meta.json``. ``cls_only``: the
    last layer computes the [CLS] position only (exact; see :func:`_cls_only_last_layer`)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_ref)
    # Eager attention exports the matmul/softmax pattern ONNX Runtime fuses into one Attention op; the SDPA
    # default exports a form it does not recognise (measured: 0 fused Attention nodes instead of 1 per layer).
    model = AutoModelForSequenceClassification.from_pretrained(model_ref, attn_implementation="eager").eval()
    out.mkdir(parents=True, exist_ok=True)
    work = out / "candidates"
    work.mkdir(exist_ok=True)
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    texts = guard_texts or DEFAULT_GUARD_TEXTS
    reference = _reference_logits(model, tokenizer, texts, max_length)  # the model as published, unchanged
    last_layer = "cls-only" if cls_only and _cls_only_last_layer(model) else "full"
    names = _export_onnx(model, tokenizer, work / "fp32.onnx")
    _optimise(work / "fp32.onnx", work / "opt.onnx", model.config)
    candidates = ["opt"]
    if quantize in ("auto", "int8"):
        _quantise(work / "opt.onnx", work / "int8.onnx")
        candidates.insert(0, "int8")  # preferred when it passes the guard: smaller and faster
    guard: dict[str, Any] = {"texts": len(texts), "min_agreement": min_agreement}
    chosen = None
    for name in candidates:
        path = work / f"{name}.onnx"
        logits, seconds = _candidate_logits(path, out / "tokenizer.json", texts, max_length, reference.shape[1])
        agreement = float(np.mean(logits.argmax(-1) == reference.argmax(-1)))
        guard[name] = {
            "agreement": round(agreement, 5),
            "max_logit_diff": round(float(np.abs(logits - reference).max()), 5),
            "seconds": round(seconds, 3),
            "bytes": path.stat().st_size,
        }
        if chosen is None and agreement >= min_agreement and (quantize != "none" or name == "opt"):
            chosen = name
    if chosen is None:
        raise RuntimeError(f"no candidate passes the accuracy guard (>= {min_agreement:.0%} agreement): {guard}")
    shutil.copyfile(work / f"{chosen}.onnx", out / "model.onnx")
    if not keep_candidates:
        shutil.rmtree(work)
    config = model.config
    meta = {
        "source": model_ref,
        "architecture": config.model_type,
        "id2label": {str(k): v for k, v in config.id2label.items()},
        "max_length": max_length,
        "inputs": names,
        "variant": chosen,
        "last_layer": last_layer,
        "guard": guard,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: list[str] | None = None) -> None:
    from mlinfer.build.sklearn_train import read_jsonl

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Hugging Face id or local directory")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--guard-data", type=Path, help="JSONL(.gz) with 'text'; the first --guard-n are used")
    parser.add_argument("--guard-n", type=int, default=500)
    parser.add_argument("--quantize", choices=["auto", "int8", "none"], default="auto")
    parser.add_argument("--keep-candidates", action="store_true")
    parser.add_argument("--full-last-layer", action="store_true", help="export every position of the last layer")
    args = parser.parse_args(argv)
    texts = [r["text"] for r in read_jsonl(args.guard_data, args.guard_n)] if args.guard_data else None
    meta = export(args.model, args.out, texts, args.quantize, keep_candidates=args.keep_candidates,
                  cls_only=not args.full_last_layer)  # fmt: skip
    print(json.dumps({k: meta[k] for k in ("source", "variant", "last_layer", "guard")}, indent=2))


if __name__ == "__main__":
    main()
