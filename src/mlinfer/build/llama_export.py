"""Build-time tool (needs torch, transformers, onnxruntime-genai): a Llama model to ONNX Runtime GenAI, guarded.

    python -m mlinfer.build.llama_export --model TinyLlama/TinyLlama-1.1B-Chat-v1.0 \
        --out /opt/ml/model/tinyllama_chat

``--model`` is a Hugging Face id (fetched now, at build time) or a local model folder. onnxruntime-genai's
model builder converts it to int4 weights (block 32, int8 compute for the MatMuls: ``accuracy_level=4``)
or fp32; the folder it writes (``model.onnx``, ``genai_config.json``, tokenizer files) is what the function
loads, with no torch or transformers at run time.

The accuracy guard compares the converted model's next-token logits with the fp32 PyTorch model's on
held-out text: top-1 next-token agreement at least ``--min-agreement`` (95 %) and perplexity at most
``--max-ppl-ratio`` (1.05) times the reference's. int4 that fails falls back to fp32, which must pass too,
or nothing is exported. A random-weight model (benchmarks) says nothing about accuracy: ``--no-guard``.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

PRECISIONS = ("int4", "fp32")
MIN_AGREEMENT = 0.95
MAX_PPL_RATIO = 1.05
# int4 weights in blocks of 32 with int8 compute (fast prompt processing where int8 dot products exist); the
# LM head, which picks each token, in int8.
INT4_OPTIONS = {"accuracy_level": "4", "block_size": "32", "matmul_mixed_precision": "last_matmul:int8"}
GUARD_TOKENS = 256  # each guard text is cut to this many tokens
# Held-out English prose for the guard when no --guard-data is given (plain, varied sentences).
DEFAULT_GUARD_TEXTS = [
    "The river rose quickly after three days of rain, and the farmers moved their animals to higher ground before "
    "the water reached the fields. By the morning of the fourth day the old bridge was closed to traffic.",
    "Photosynthesis is the process by which green plants use light energy to turn carbon dioxide and water into "
    "sugar. Oxygen is released as a by-product, which is why forests are often described as the lungs of the earth.",
    "She opened the letter slowly, afraid of what it might say. It was from her brother, who had been travelling "
    "in the mountains for most of the year, and it said only that he was well and would be home before winter.",
    "To make bread, mix flour, water, salt and yeast into a dough, knead it for ten minutes, and leave it to rise "
    "in a warm place until it has doubled in size. Then shape the loaf and bake it in a hot oven.",
    "The committee met on Tuesday to discuss the budget for the coming year. Most members agreed that the library "
    "needed new computers, but there was a long debate about whether the park should be repaired first.",
    "Question: Which planet is closest to the sun?\nA. Venus\nB. Mercury\nC. Mars\nD. Earth\nAnswer: B. Mercury "
    "is the smallest planet in the solar system and the one closest to the sun.",
    "When the train finally arrived, it was almost an hour late. The passengers, tired and cold, climbed aboard "
    "without a word, and the conductor apologised to each of them as he checked their tickets.",
    "A good night's sleep helps the body repair itself and the mind to store what it has learned during the day. "
    "Doctors recommend that adults sleep between seven and nine hours each night.",
]


# -- conversion ------------------------------------------------------------------------------------
def _builder(argv: list[str]) -> None:
    """Run onnxruntime-genai's model builder (in a child process: it holds the whole model in memory).

    ONNX Runtime's CPU GroupQueryAttention takes head sizes that are multiples of 8 only (TinyLLama-v0's are
    4); for those the builder is told to emit MultiHeadAttention, which takes any head size.
    """
    import onnxruntime_genai.models  # noqa: F401  (puts the builder's own modules on sys.path)
    from builders import base  # type: ignore[import-not-found]

    gqa = base.Model.is_gqa_supported
    base.Model.is_gqa_supported = lambda self: gqa(self) and self.head_size % 16 == 0
    packed = base.Model.is_packed_attn_supported
    base.Model.is_packed_attn_supported = lambda self: packed(self) and self.head_size % 16 == 0
    sys.argv = ["onnxruntime_genai.models.builder", *argv]
    runpy.run_module("onnxruntime_genai.models.builder", run_name="__main__")


def convert(source: Path, out: Path, precision: str, options: dict[str, str] | None = None) -> Path:
    """Convert the model folder ``source`` into ``out`` at ``precision`` with the model builder; ``options``
    are the builder's extra options (default for int4: :data:`INT4_OPTIONS`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="mlinfer-genai-") as cache:
        argv = ["-i", str(source), "-o", str(out), "-p", precision, "-e", "cpu", "-c", cache]
        options = INT4_OPTIONS if options is None and precision == "int4" else options or {}
        if options:
            argv += ["--extra_options", *(f"{k}={v}" for k, v in options.items())]
        proc = subprocess.run(
            [sys.executable, "-m", "mlinfer.build.llama_export", "--builder", *argv],
            capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"},
        )  # fmt: skip
    if proc.returncode != 0 or not (out / "genai_config.json").exists():
        raise RuntimeError(f"the model builder failed ({precision}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return out


# -- the accuracy guard ----------------------------------------------------------------------------
def _token_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    ids = [tokenizer(t, add_special_tokens=True).input_ids[:GUARD_TOKENS] for t in texts]
    return [i for i in ids if len(i) >= 2]


def reference_logits(source: Path, sequences: list[list[int]]) -> list[np.ndarray]:
    """The fp32 PyTorch model's logits for every position of each sequence."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    with torch.inference_mode():
        return [model(torch.tensor([s])).logits[0].float().numpy() for s in sequences]


def genai_logits(folder: Path, sequences: list[list[int]]) -> list[np.ndarray]:
    """The converted model's logits for every position of each sequence (one prefill each)."""
    import onnxruntime_genai as og

    model = og.Model(str(folder))
    out = []
    for seq in sequences:
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(seq) + 1, do_sample=False)
        generator = og.Generator(model, params)
        generator.append_tokens(np.asarray(seq, dtype=np.int32))
        out.append(np.asarray(generator.get_output("logits"), dtype=np.float32).reshape(len(seq), -1))
    return out


def _nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=-1))
    return log_z - shifted[np.arange(len(targets)), targets]


def compare(reference: list[np.ndarray], candidate: list[np.ndarray], sequences: list[list[int]]) -> dict[str, Any]:
    """Top-1 next-token agreement and the perplexity ratio of ``candidate`` against ``reference``."""
    agree = total = 0
    nll_ref, nll_cand = [], []
    for ref, cand, seq in zip(reference, candidate, sequences, strict=True):
        ref, cand, targets = ref[:-1], cand[: len(ref) - 1], np.asarray(seq[1:])
        agree += int((ref.argmax(-1) == cand.argmax(-1)).sum())
        total += len(targets)
        nll_ref.append(_nll(ref, targets))
        nll_cand.append(_nll(cand, targets))
    ppl_ref = float(np.exp(np.concatenate(nll_ref).mean()))
    ppl_cand = float(np.exp(np.concatenate(nll_cand).mean()))
    return {"agreement": agree / total, "tokens": total, "perplexity_reference": round(ppl_ref, 4),
            "perplexity": round(ppl_cand, 4), "perplexity_ratio": round(ppl_cand / ppl_ref, 5)}  # fmt: skip


def guard(
    source: Path, folder: Path, texts: list[str], min_agreement: float = MIN_AGREEMENT,
    max_ppl_ratio: float = MAX_PPL_RATIO,
) -> dict[str, Any]:  # fmt: skip
    """Judge the converted model in ``folder`` against the PyTorch model in ``source`` on ``texts``."""
    from transformers import AutoTokenizer

    sequences = _token_ids(AutoTokenizer.from_pretrained(source), texts)
    return _judge(folder, sequences, reference_logits(source, sequences), min_agreement, max_ppl_ratio)


def _judge(
    folder: Path, sequences: list[list[int]], reference: list[np.ndarray], min_agreement: float, max_ppl_ratio: float
) -> dict[str, Any]:
    """The guard's verdict on ``folder`` for token ``sequences`` whose fp32 logits are ``reference``."""
    if not sequences:
        raise ValueError("the guard needs texts of at least two tokens")
    result = compare(reference, genai_logits(folder, sequences), sequences)
    result["passed"] = result["agreement"] >= min_agreement and result["perplexity_ratio"] <= max_ppl_ratio
    result.update(min_agreement=min_agreement, max_ppl_ratio=max_ppl_ratio, texts=len(sequences))
    return result


# -- export ----------------------------------------------------------------------------------------
def _local_folder(source: str) -> Path:
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "tokenizer*"]
    return Path(snapshot_download(source, allow_patterns=patterns))


def export(
    source: str, out: Path, texts: list[str] | None = None, precision: str = "int4", check: bool = True,
    min_agreement: float = MIN_AGREEMENT, max_ppl_ratio: float = MAX_PPL_RATIO,
) -> dict[str, Any]:  # fmt: skip
    """Convert ``source`` into ``out``: ``precision`` first, then fp32 if the guard rejects it; ``meta.json``
    records the precision shipped, the guard's figures and whether the model is a chat model."""
    from transformers import AutoTokenizer

    folder = _local_folder(source)
    texts = texts or DEFAULT_GUARD_TEXTS
    tokenizer = AutoTokenizer.from_pretrained(folder)
    sequences = _token_ids(tokenizer, texts)
    reference = reference_logits(folder, sequences) if check else None
    tried: dict[str, Any] = {}
    for candidate in dict.fromkeys([precision, "fp32"]):
        t0 = time.perf_counter()
        convert(folder, out, candidate)
        seconds = round(time.perf_counter() - t0, 1)
        if not check:
            tried[candidate] = {"passed": None, "convert_s": seconds}
            break
        # the reference logits and token ids are computed once, for every candidate
        tried[candidate] = {**_judge(out, sequences, reference, min_agreement, max_ppl_ratio), "convert_s": seconds}
        if tried[candidate]["passed"]:
            break
    shipped = next(reversed(tried))
    if check and not tried[shipped]["passed"]:
        shutil.rmtree(out, ignore_errors=True)
        raise RuntimeError(f"no conversion of {source} passes the accuracy guard: {json.dumps(tried)}")
    meta = {
        "source": source, "precision": shipped, "chat": bool(getattr(tokenizer, "chat_template", None)),
        "guard": tried if check else "skipped (--no-guard)", "onnx_bytes": _onnx_bytes(out),
    }  # fmt: skip
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def _onnx_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("model.onnx*"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--builder":
        _builder(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="Hugging Face id or local model folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--precision", choices=PRECISIONS, default="int4")
    parser.add_argument("--guard-data", type=Path, help="JSONL(.gz) of held-out texts ('text' or 'prompt')")
    parser.add_argument("--min-agreement", type=float, default=MIN_AGREEMENT)
    parser.add_argument("--max-ppl-ratio", type=float, default=MAX_PPL_RATIO)
    parser.add_argument("--no-guard", action="store_true", help="random-weight models (benchmarks) only")
    args = parser.parse_args(argv)
    texts = None
    if args.guard_data:
        from mlinfer.build.sklearn_train import read_jsonl

        texts = [r.get("text") or r.get("prompt") for r in read_jsonl(args.guard_data, 64)]
    meta = export(args.model, args.out, texts, args.precision, not args.no_guard, args.min_agreement,
                  args.max_ppl_ratio)  # fmt: skip
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
