"""DistilBERT on real IMDb reviews: the common baseline against the ONNX fast path, side by side, 1 thread.

    .venv/bin/python benchmarks/bert_bench.py --n 500            # prints a table (and --json FILE)

Speed model: a full-size DistilBERT-base (6 layers, 768 wide, 30,522-token WordPiece vocabulary learnt
from the reviews, so token counts are realistic) with random weights: compute does not depend on weight
values. Accuracy guard: a small DistilBERT trained here on the 2,500-review sample (the fast path must
agree with fp32 PyTorch on >= 99 % of held-out reviews). Lambda at 1,769 MB has one vCPU, so every path
runs on one thread; CPU-seconds are measured per process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, shared_rows


def reviews(n: int) -> list[dict]:
    """The real IMDb reviews, or the project's own labelled sample where ../shared is absent."""
    from mlinfer.data.sample import make_reviews

    return shared_rows("imdb_reviews.jsonl.gz", n) or make_reviews(n, seed=3)


def build_full_size(work: Path, texts: list[str]) -> Path:
    """DistilBERT-base dimensions, random weights, a 30,522 WordPiece vocabulary learnt from the texts."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    from mlinfer.build.bert_train import train_tokenizer

    out = work / "distilbert-base-random"
    if (out / "config.json").exists():
        return out
    tok = train_tokenizer(texts, vocab_size=30522)
    config = DistilBertConfig(vocab_size=len(tok), num_labels=2, id2label={0: "NEGATIVE", 1: "POSITIVE"},
                              label2id={"NEGATIVE": 0, "POSITIVE": 1}, pad_token_id=tok.pad_token_id)  # fmt: skip
    DistilBertForSequenceClassification(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def run_baseline(model_dir: Path, texts: list[str]) -> dict:
    """transformers pipeline, fp32, one text at a time (the common way)."""
    import torch
    from transformers import pipeline

    torch.set_num_threads(1)
    clf = pipeline("text-classification", model=str(model_dir), device="cpu")
    clf(texts[0], truncation=True, max_length=512)
    t0, c0 = time.perf_counter(), _cpu()
    preds = [clf(t, truncation=True, max_length=512)[0]["label"] for t in texts]
    return {"wall_s": time.perf_counter() - t0, "cpu_s": _cpu() - c0, "preds": preds}


def _session(path: Path | bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    source = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def onnx_adapter(path: Path, tokenizer_dir: Path):
    from tokenizers import Tokenizer

    from mlinfer.models.bert import BertAdapter

    meta = {"id2label": {"0": "NEGATIVE", "1": "POSITIVE"}, "max_length": 512}
    return BertAdapter("bench", _session(path), Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json")), meta)


def run_onnx(path: Path, tokenizer_dir: Path, texts: list[str]) -> dict:
    adapter = onnx_adapter(path, tokenizer_dir)
    adapter.predict(texts[:4])
    t0, c0 = time.perf_counter(), _cpu()
    preds = [r["label"] for r in adapter.predict(texts)]
    return {"wall_s": time.perf_counter() - t0, "cpu_s": _cpu() - c0, "preds": preds}


def tokens_per_run_sweep(adapter, encodings: list, budgets: list[int], rounds: int = 3) -> dict:
    """Median CPU ms per text and ONNX Runtime calls for each sub-batch budget (padded tokens per call),
    over ``rounds`` rounds in rotated order (the first budget of a round would otherwise be favoured); the
    adapter's own budget is restored afterwards."""
    from mlinfer.models.bert import sub_batches

    shipped, times = adapter.tokens_per_run, {b: [] for b in budgets}
    adapter.logits(encodings[:4])
    for r in range(rounds):
        for budget in budgets[r % len(budgets) :] + budgets[: r % len(budgets)]:
            adapter.tokens_per_run = budget
            c0 = _cpu()
            adapter.logits(encodings)
            times[budget].append(1000 * (_cpu() - c0) / len(encodings))
    adapter.tokens_per_run = shipped
    lengths = [len(e.ids) for e in encodings]
    return {
        b: {"cpu_ms_per_text": statistics.median(t), "calls": len(sub_batches(lengths, b))} for b, t in times.items()
    }


def gemm_bound(tokens: list[int], layers: int = 6, dim: int = 768, ffn: int = 3072, m: int = 256) -> dict:
    """The GEMMs of a DistilBERT layer (4 of dim x dim, dim x ffn, ffn x dim) at one thread: torch fp32
    against ONNX Runtime's int8 dynamic MatMul, as CPU seconds for the given texts' tokens. The int8 time is
    a floor for any int8 path at these FLOPs: it leaves out attention scores, softmax, LayerNorm and GELU."""
    import numpy as np
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rng = np.random.default_rng(0)
    shapes = [(dim, dim)] * 4 + [(dim, ffn), (ffn, dim)]
    weights = [(rng.standard_normal(s) * 0.05).astype(np.float32) for s in shapes]
    x = rng.standard_normal((m, dim)).astype(np.float32)
    nodes, names = [], ["x"]
    for i in range(len(shapes)):  # a chain x -> W0 -> ... -> W5: each GEMM sees its real input width
        nodes.append(helper.make_node("MatMul", [names[-1], f"w{i}"], [f"y{i}"]))
        names.append(f"y{i}")
    graph = helper.make_graph(
        nodes, "layer_gemms", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, dim])],
        [helper.make_tensor_value_info(names[-1], TensorProto.FLOAT, [m, dim])],
        [numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(weights)],
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), fp32)
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        session = _session(int8.read_bytes())

    def median_cpu(fn, runs: int = 15) -> float:
        fn()
        times = []
        for _ in range(runs):
            c0 = time.process_time()  # finer than os.times' clock ticks
            fn()
            times.append(time.process_time() - c0)
        return sorted(times)[runs // 2]

    torch.set_num_threads(1)
    xt, wts = torch.from_numpy(x), [torch.from_numpy(w) for w in weights]

    def torch_chain() -> None:
        y = xt
        for w in wts:
            y = y @ w

    per_token = {
        "fp32_torch": median_cpu(torch_chain) / m * layers,
        "int8_ort": median_cpu(lambda: session.run(None, {"x": x})) / m * layers,
    }
    flops = 2 * sum(a * b for a, b in shapes) * layers
    return {
        "tokens": sum(tokens),
        "gflop_per_s": {k: flops / v / 1e9 for k, v in per_token.items()},
        "cpu_s": {k: v * sum(tokens) for k, v in per_token.items()},
    }


INIT_BASELINE = """
import time, sys; t0 = time.perf_counter(); sys.path.insert(0, {src!r})
from transformers import pipeline
clf = pipeline("text-classification", model={model!r}, device="cpu")
t1 = time.perf_counter(); clf({text!r}, truncation=True, max_length=512)
from mlinfer.local.context import peak_rss_mb; print(t1 - t0, peak_rss_mb())
"""
INIT_FAST = """
import time, sys; t0 = time.perf_counter(); sys.path.insert(0, {src!r})
from pathlib import Path
from mlinfer.models.bert import BertAdapter
m = BertAdapter.load(Path({path!r}), "bench")
t1 = time.perf_counter(); m.predict([{text!r}])
from mlinfer.local.context import peak_rss_mb; print(t1 - t0, peak_rss_mb())
"""


def cold(code: str, runs: int = 3) -> tuple[float, float]:
    """Median import + load seconds in a fresh interpreter, and peak RSS (MB) after one prediction."""
    out = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "MLINFER_THREADS": "1"})  # fmt: skip
        out.append([float(x) for x in proc.stdout.split()[-2:]])
    out.sort()
    return out[len(out) // 2][0], max(r[1] for r in out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="IMDb reviews to classify (the set has 2,500)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/mlinfer-bench/bert"))
    parser.add_argument("--guard-steps", type=int, default=300)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--init-only", action="store_true", help="only the cold-start and memory figures")
    parser.add_argument("--sweep-n", type=int, default=100, help="reviews for the tokens-per-call sweep (0: skip)")
    args = parser.parse_args()
    from mlinfer.bench.machine import describe

    print(describe(), flush=True)
    from mlinfer.build.bert_export import export
    from mlinfer.build.bert_train import train
    from mlinfer.cost.pricing import lambda_cost

    rows = reviews(2500)
    texts = [r["text"] for r in rows[: args.n]]
    args.work.mkdir(parents=True, exist_ok=True)
    model_dir = build_full_size(args.work, [r["text"] for r in rows])
    art, art_full = args.work / "artifact", args.work / "artifact-full-last-layer"
    for folder, cls_only in ((art, True), (art_full, False)):  # the speed model: no guard
        meta, wanted = folder / "meta.json", "cls-only" if cls_only else "full"
        if not meta.exists() or json.loads(meta.read_text()).get("last_layer", "full") != wanted:
            export(str(model_dir), folder, texts[:8], min_agreement=0.0, keep_candidates=True, cls_only=cls_only)
    if args.init_only:
        init_base = cold(INIT_BASELINE.format(src=str(ROOT / "src"), model=str(model_dir), text=texts[0]))
        init_fast = cold(INIT_FAST.format(src=str(ROOT / "src"), path=str(art), text=texts[0]))
        print(f"init (import + load, median of 3): baseline {init_base[0]:.2f} s, fast path {init_fast[0]:.2f} s")
        print(f"peak RSS after one prediction: baseline {init_base[1]:.0f} MB, fast path {init_fast[1]:.0f} MB")
        return
    results = {"baseline (pipeline, fp32, 1 text)": run_baseline(model_dir, texts)}
    for folder, name, label in (
        (art, "fp32", "ONNX fp32"),
        (art, "opt", "ONNX fused"),
        (art_full, "int8", "ONNX fused + int8, full last layer"),
        (art, "int8", "ONNX fused + int8 (shipped)"),
    ):
        results[label] = run_onnx(folder / "candidates" / f"{name}.onnx", folder, texts)
    base = results["baseline (pipeline, fp32, 1 text)"]
    shipped = onnx_adapter(art / "candidates" / "int8.onnx", art)
    encodings = shipped.encode(texts)
    bound = gemm_bound([len(e.ids) for e in encodings])
    budgets = [256, 512, 1024, 4096, 16384]
    sweep = tokens_per_run_sweep(shipped, encodings[: args.sweep_n], budgets) if args.sweep_n else {}
    init_base = cold(INIT_BASELINE.format(src=str(ROOT / "src"), model=str(model_dir), text=texts[0]))
    init_fast = cold(INIT_FAST.format(src=str(ROOT / "src"), path=str(art), text=texts[0]))

    guard_dir = args.work / "guard-model"
    if not (guard_dir / "config.json").exists():
        train(rows[:2000], guard_dir, steps=args.guard_steps, dim=128, layers=2, heads=2)
    guard = export(str(guard_dir), args.work / "guard-artifact", [r["text"] for r in rows[2000:2500]])["guard"]

    table = []
    base_ips = len(texts) / base["cpu_s"]
    for label, r in results.items():
        ips = len(texts) / r["cpu_s"]
        agree = sum(a == b for a, b in zip(r["preds"], base["preds"], strict=True)) / len(texts)
        per_item_ms = 1000 * r["wall_s"] / len(texts)
        cost = {arch: lambda_cost([round(per_item_ms * 25_000)], 1769, arch).total for arch in ("x86_64", "arm64")}
        table.append(
            {
                "path": label,
                "items_per_s": len(texts) / r["wall_s"],
                "items_per_cpu_s": ips,
                "cpu_s_per_1000": 1000 * r["cpu_s"] / len(texts),
                "speedup_vs_baseline": ips / base_ips,
                "agreement_with_baseline": agree,
                "cost_25k_x86_64": cost["x86_64"],
                "cost_25k_arm64": cost["arm64"],
            }
        )
    print(f"DistilBERT-base (random weights), {len(texts)} IMDb reviews, 1 thread, {os.cpu_count()} host CPUs\n")
    print(
        f"{'path':40} {'items/s':>8} {'items/CPU-s':>11} {'CPU-s/1k':>9} {'x base':>7} {'$25k x86':>9} {'$25k arm':>9}"
    )
    for t in table:
        print(f"{t['path']:40} {t['items_per_s']:8.2f} {t['items_per_cpu_s']:11.2f} {t['cpu_s_per_1000']:9.1f} "
              f"{t['speedup_vs_baseline']:7.2f} {t['cost_25k_x86_64']:9.4f} {t['cost_25k_arm64']:9.4f}")  # fmt: skip
    rate, gemm_s = bound["gflop_per_s"], bound["cpu_s"]
    print(f"\nGEMMs alone, {bound['tokens']:,} tokens, 1 thread: torch fp32 {rate['fp32_torch']:.0f} GFLOP/s "
          f"({gemm_s['fp32_torch']:.1f} CPU-s, {gemm_s['fp32_torch'] / base['cpu_s']:.0%} of the baseline's), "
          f"ONNX Runtime int8 {rate['int8_ort']:.0f} GOP/s ({gemm_s['int8_ort']:.1f} CPU-s): no int8 path at these "
          f"FLOPs can exceed {base['cpu_s'] / gemm_s['int8_ort']:.2f}x the baseline on this CPU")  # fmt: skip
    if sweep:
        cells = ", ".join(f"{b:,}: {v['cpu_ms_per_text']:.0f} ms ({v['calls']} calls)" for b, v in sweep.items())
        print(f"int8 CPU per review by padded tokens per call ({args.sweep_n} reviews, median of 3): {cells}")
    print(f"init (import + load, median of 3): baseline {init_base[0]:.2f} s, fast path {init_fast[0]:.2f} s")
    print(f"peak RSS after one prediction: baseline {init_base[1]:.0f} MB, fast path {init_fast[1]:.0f} MB")
    print(f"accuracy guard (small DistilBERT trained here, 500 held-out reviews): {json.dumps(guard)}")
    if args.json:
        args.json.write_text(json.dumps({"table": table, "init_s": {"baseline": init_base[0], "fast": init_fast[0]},
                                         "peak_rss_mb": {"baseline": init_base[1], "fast": init_fast[1]},
                                         "guard": guard, "n": len(texts), "gemm_bound": bound,
                                         "tokens_per_run": sweep}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
