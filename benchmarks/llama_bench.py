"""TinyLlama-1.1B generation: transformers generate in fp32 (baseline) against int8 weights, side by side.

    .venv/bin/python benchmarks/llama_bench.py --prompts 3 --new-tokens 32

TinyLlama-1.1B dimensions (22 layers, 2,048 wide, 32,000-token vocabulary) with random weights: decoding
speed does not depend on weight values. Greedy decoding with a KV cache on real ARC-Challenge prompts.
Decoding one token reads every weight once (one row of the embedding table), so tokens/s is bounded by
read bandwidth / those bytes; the bandwidth is measured here by summing a 1 GiB tensor on the same
threads. Each path runs in its own process (peak RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import shared_rows


def prompts(n: int) -> list[str]:
    """Real ARC-Challenge prompts, or simple questions where ../shared is absent."""
    rows = shared_rows("arc_challenge_test.jsonl.gz", n)
    return [r["prompt"] for r in rows] if rows else [f"Question: what is {i} plus {i}?\nAnswer:" for i in range(n)]


def bandwidth_gb_s(threads: int) -> float:
    """Read bandwidth: summing a 1 GiB tensor on the benchmark's threads, best of 5."""
    import torch

    torch.set_num_threads(threads)
    a = torch.ones(1 << 28, dtype=torch.float32)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        a.sum()
        best = max(best, a.numel() * 4 / (time.perf_counter() - t0) / 1e9)
    return best


def run(model_dir: str, quantize: str, texts: list[str], new_tokens: int, threads: int) -> dict:
    os.environ["LLAMA_QUANTIZE"] = quantize
    os.environ["MLINFER_THREADS"] = str(threads)
    from mlinfer.local.context import peak_rss_mb
    from mlinfer.models.llama import LlamaAdapter

    t0 = time.perf_counter()
    model = LlamaAdapter.load(Path(model_dir), "bench")
    load_s = time.perf_counter() - t0
    model.generate(texts[0], 2)  # warm-up
    outs = [model.generate(t, new_tokens) for t in texts]
    # Bytes read per decoded token: every weight but the embedding table, of which one row is read.
    embedding = model.model.get_input_embeddings().weight
    weight_bytes = sum(p.numel() * p.element_size() for p in model.model.parameters())
    weight_bytes -= embedding.numel() * embedding.element_size()
    import torch

    for m in model.model.modules():  # int8 dynamic Linear keeps packed weights outside parameters()
        if isinstance(m, torch.ao.nn.quantized.dynamic.Linear):
            w = m.weight()
            weight_bytes += w.numel() * w.element_size()
    return {
        "quantize": quantize,
        "load_s": load_s,
        "tokens_per_s": statistics.median(o["tokens_per_s"] for o in outs),
        "ttft_ms": statistics.median(o["ttft_ms"] for o in outs),
        "prompt_tokens": statistics.median(o["prompt_tokens"] for o in outs),
        "weight_bytes": weight_bytes,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--work", type=Path, default=Path("/tmp/mlinfer-bench/llama"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", nargs=2, metavar=("MODEL_DIR", "QUANTIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    texts = prompts(args.prompts)
    if args.one:  # child process: one path, printed as JSON
        print(json.dumps(run(args.one[0], args.one[1], texts, args.new_tokens, args.threads)))
        return
    from mlinfer.bench.machine import describe

    print(describe(), flush=True)
    from mlinfer.build.llama_build import TINYLLAMA_1_1B, build

    model_dir = args.work / "tinyllama-1.1b-random"
    if not (model_dir / "config.json").exists():
        build(model_dir, texts * 20, dims=TINYLLAMA_1_1B, chat=True)
    bw = bandwidth_gb_s(args.threads)
    rows = []
    for quantize in ("none", "int8"):
        cmd = [sys.executable, __file__, "--one", str(model_dir), quantize, "--prompts", str(args.prompts),
               "--new-tokens", str(args.new_tokens), "--threads", str(args.threads)]  # fmt: skip
        rows.append(json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1]))
    base = rows[0]["tokens_per_s"]
    print(f"TinyLlama-1.1B (random weights), {args.prompts} ARC prompts, {args.new_tokens} new tokens, "
          f"{args.threads} threads; read bandwidth {bw:.1f} GB/s\n")  # fmt: skip
    header = ["tok/s", "x base", "TTFT ms", "GB/token", "% of bound", "load s", "RSS MB"]
    print(f"{'path':28} " + " ".join(f"{h:>{max(7, len(h))}}" for h in header))
    for r in rows:
        gb = r["weight_bytes"] / 1e9
        bound = bw / gb  # decoding reads each weight once per token
        r.update(speedup=r["tokens_per_s"] / base, gb_per_token=gb, bound_tokens_per_s=bound,
                 fraction_of_bound=r["tokens_per_s"] / bound)  # fmt: skip
        label = "generate, fp32 (baseline)" if r["quantize"] == "none" else "generate, int8 Linear"
        print(f"{label:28} {r['tokens_per_s']:7.2f} {r['speedup']:7.2f} {r['ttft_ms']:8.0f} {gb:9.2f} "
              f"{100 * r['fraction_of_bound']:9.0f}% {r['load_s']:7.1f} {r['peak_rss_mb']:7.0f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"bandwidth_gb_s": bw, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
