"""TinyLlama-1.1B generation: the shipped ONNX Runtime GenAI int4 path against PyTorch baselines, side by side.

    .venv/bin/python benchmarks/llama_bench.py --prompts 12 --threads 1,2

TinyLlama-1.1B dimensions (22 layers, 2,048 wide, 32,000-token vocabulary) with random weights: speed does
not depend on weight values. Real ARC-Challenge prompts in the chat template, greedy decoding with a KV
cache. Rows: ``transformers`` fp32 ``generate`` (the baseline), the same with dynamically quantised int8
Linear layers (the previous path), the function's adapter on the GenAI int4 conversion with one prompt
per generator call and with up to four (shipped; prompts of similar length share a call), and llama.cpp
Q4_0 through ``llama-cpp-python`` where it is installed and a GGUF is given (``--gguf``; see
llama_gguf.py). Each path and thread count runs in its own process (load time, peak RSS). Decoding one
token reads every weight once (one row of the embedding table), so tokens/s is bounded by read bandwidth
/ those bytes; the bandwidth is measured by summing a 1 GiB array. For batched generation, tokens/s counts
every stream decoding together (they share each read of the weights).

Cost: USD per 1,000 prompts with 8 and with 32 new tokens, on x86_64 at the memory the path needs (peak
RSS + 25 %, rounded up to 64 MB), with Lambda's CPU share at that memory (1 vCPU per 1,769 MB: below
that, the one-thread time stretches; from 2 vCPUs on, the two-thread time applies), one invocation per
100 prompts."""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import shared_rows

PATHS = {
    "torch-fp32": "transformers generate, fp32 (baseline)",
    "torch-int8": "transformers generate, int8 Linear",
    "genai-int4-b1": "GenAI int4, 1 prompt per call",
    "genai-int4": "GenAI int4, 4 prompts per call (shipped)",
    "llamacpp-q4_0": "llama.cpp Q4_0 (llama-cpp-python)",
}


CHAT = "<|user|>\n{}</s>\n<|assistant|>\n"  # llama_build.CHAT_TEMPLATE for one user message


def prompts(n: int) -> list[str]:
    """Real ARC-Challenge prompts, or simple questions where ../shared is absent."""
    rows = shared_rows("arc_challenge_test.jsonl.gz", n)
    return [r["prompt"] for r in rows] if rows else [f"Question: what is {i} plus {i}?\nAnswer:" for i in range(n)]


def bandwidth_gb_s(threads: int) -> float:
    """Read bandwidth: summing a 1 GiB array on the benchmark's threads, best of 5."""
    import torch

    torch.set_num_threads(threads)
    a = torch.ones(1 << 28, dtype=torch.float32)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        a.sum()
        best = max(best, a.numel() * 4 / (time.perf_counter() - t0) / 1e9)
    return best


# -- one path, in a child process ------------------------------------------------------------------
def _timed(answer_all) -> tuple[dict[str, float], list[dict]]:
    """Wall seconds for all prompts with 8 and with 32 new tokens, and the 32-token answers."""
    walls, outs = {}, []
    for new in (8, 32):
        t0 = time.perf_counter()
        outs = answer_all(new)
        walls[str(new)] = time.perf_counter() - t0
    return walls, outs


def _genai(folder: Path, batch: int, texts: list[str], threads: int) -> dict:
    os.environ["MLINFER_THREADS"], os.environ["LLAMA_BATCH_SIZE"] = str(threads), str(batch)
    from mlinfer.models.llama import LlamaAdapter

    t0 = time.perf_counter()
    model = LlamaAdapter.load(folder, "bench")
    load_s = time.perf_counter() - t0
    model.generate(texts[0], {"max_new_tokens": 2})  # warm-up
    walls, outs = _timed(
        lambda new: model.predict([model.validate({"prompt": t, "max_new_tokens": new}) for t in texts])
    )
    config = json.loads((folder / "genai_config.json").read_text())["model"]
    embedding = config["vocab_size"] * config["decoder"]["hidden_size"] * 4  # fp32 table, one row read per token
    weight_bytes = sum(p.stat().st_size for p in folder.glob("model.onnx*")) - embedding
    return {"load_s": load_s, "walls": walls, "outs": outs, "weight_bytes": weight_bytes, "streams": batch}


def _torch(folder: Path, quantize: str, texts: list[str], threads: int) -> dict:
    from llama_torch import TorchLlama

    t0 = time.perf_counter()
    model = TorchLlama(folder, quantize, threads)
    load_s = time.perf_counter() - t0
    model.generate(texts[0], 2)
    walls, outs = _timed(lambda new: [model.generate(t, new) for t in texts])
    return {"load_s": load_s, "walls": walls, "outs": outs, "weight_bytes": model.weight_bytes()}


def _llamacpp(gguf: Path, texts: list[str], threads: int) -> dict:
    from llama_cpp import Llama

    t0 = time.perf_counter()
    model = Llama(model_path=str(gguf), n_ctx=2048, n_threads=threads, n_batch=512, verbose=False)
    load_s = time.perf_counter() - t0

    def one(text: str, new: int) -> dict:
        ids = model.tokenize(CHAT.format(text).encode())  # the chat template the other rows apply
        model.reset()
        t0 = time.perf_counter()
        first, n = None, 0
        for _ in model.generate(ids, top_k=1, temp=0.0):
            first = first or time.perf_counter()
            n += 1
            if n >= new:
                break
        end = time.perf_counter()
        return {"tokens": n, "prompt_tokens": len(ids), "ttft_ms": (first - t0) * 1000,
                "tokens_per_s": (n - 1) / (end - first) if n > 1 else None}  # fmt: skip

    one(texts[0], 2)
    walls, outs = _timed(lambda new: [one(t, new) for t in texts])
    return {"load_s": load_s, "walls": walls, "outs": outs, "weight_bytes": gguf.stat().st_size}


def run_one(path: str, folder: Path, texts: list[str], threads: int) -> dict:
    from mlinfer.runtime.threads import peak_rss_mb

    if path.startswith("torch"):
        r = _torch(folder, path.split("-")[1], texts, threads)
    elif path == "llamacpp-q4_0":
        r = _llamacpp(folder, texts, threads)
    else:
        r = _genai(folder, 1 if path.endswith("b1") else 4, texts, threads)
    outs, streams = r.pop("outs"), min(r.pop("streams", 1), len(texts))
    # Decoding tokens/s: one prompt's stream, times the streams that decode together (batched generation).
    return {**r, "path": path, "threads": threads, "peak_rss_mb": peak_rss_mb(), "streams": streams,
            "tokens_per_s": streams * statistics.median(o["tokens_per_s"] for o in outs if o["tokens_per_s"]),
            "ttft_ms": statistics.median(o["ttft_ms"] for o in outs),
            "prompt_tokens": statistics.median(o["prompt_tokens"] for o in outs),
            "new_tokens": statistics.median(o["tokens"] for o in outs)}  # fmt: skip


# -- cost ------------------------------------------------------------------------------------------
def memory_needed(peak_rss_mb: float) -> int:
    """Lambda memory for a path: peak RSS + 25 %, rounded up to 64 MB, at least 128 MB."""
    return max(128, math.ceil(peak_rss_mb * 1.25 / 64) * 64)


def usd_per_1000(rows: dict[int, dict], new: int, prompts_run: int) -> tuple[float, int]:
    """USD per 1,000 prompts with ``new`` new tokens at the memory the path needs, and that memory."""
    from mlinfer.cost.pricing import load_prices
    from mlinfer.runtime.threads import MB_PER_VCPU

    prices = load_prices()
    memory = memory_needed(max(r["peak_rss_mb"] for r in rows.values()))
    vcpus = memory / MB_PER_VCPU
    if vcpus >= 2 and 2 in rows:
        seconds = rows[2]["walls"][str(new)] / prompts_run
    else:
        seconds = rows[1]["walls"][str(new)] / prompts_run / min(1.0, vcpus)
    # One invocation per 100 prompts (the workflow's default batch size).
    return 1000 * seconds * memory / 1024 * prices.gb_second("x86_64") + 10 * prices.lambda_request, memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated: " + ", ".join(PATHS))
    parser.add_argument("--gguf", type=Path, help="a Q4_0 GGUF of the same model, for the llama.cpp row")
    parser.add_argument("--work", type=Path, default=Path("/tmp/mlinfer-bench/llama"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", nargs=3, metavar=("PATH", "FOLDER", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    texts = prompts(args.prompts)
    if args.one:  # child process: one path, printed as JSON
        print(json.dumps(run_one(args.one[0], Path(args.one[1]), texts, int(args.one[2]))))
        return
    from mlinfer.bench.machine import describe

    print(describe(), flush=True)
    from mlinfer.build.llama_build import TINYLLAMA_1_1B, build
    from mlinfer.build.llama_export import export

    hf, genai = args.work / "tinyllama-1.1b-random", args.work / "tinyllama-1.1b-genai-int4"
    if not (hf / "config.json").exists():
        build(hf, texts * 20, dims=TINYLLAMA_1_1B, chat=True)
    if not (genai / "meta.json").exists():
        export(str(hf), genai, check=False)  # random weights: the guard would say nothing
    folders = {"torch-fp32": hf, "torch-int8": hf, "genai-int4-b1": genai, "genai-int4": genai}
    paths = args.paths.split(",")
    if "llamacpp-q4_0" in paths:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            print("llama.cpp row skipped: llama-cpp-python is not installed (pip install llama-cpp-python "
                  "compiles llama.cpp)")  # fmt: skip
            paths.remove("llamacpp-q4_0")
        else:
            if args.gguf and args.gguf.exists():
                folders["llamacpp-q4_0"] = args.gguf
            else:
                print("llama.cpp row skipped: give --gguf, a Q4_0 GGUF of the same model")
                paths.remove("llamacpp-q4_0")
    threads = [int(t) for t in args.threads.split(",")]
    bw = {t: bandwidth_gb_s(t) for t in threads}
    results: dict[str, dict[int, dict]] = {}
    for path in paths:
        for t in threads:
            cmd = [sys.executable, __file__, "--one", path, str(folders[path]), str(t), "--prompts", str(args.prompts)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{path} ({t} threads) failed:\n{proc.stderr[-2000:]}")
                continue
            results.setdefault(path, {})[t] = json.loads(proc.stdout.strip().splitlines()[-1])
    base = results.get("torch-fp32")
    prompt_tokens = statistics.median(r["prompt_tokens"] for p in results.values() for r in p.values())
    bandwidths = ", ".join(f"{bw[t]:.1f} GB/s ({t} thr)" for t in threads)
    print(f"\nTinyLlama-1.1B (random weights), {args.prompts} ARC prompts (median {prompt_tokens:.0f} tokens in the "
          f"chat template); read bandwidth {bandwidths}\n")  # fmt: skip
    head = f"{'path':42} {'thr':>3} {'tok/s':>6} {'x base':>6} {'TTFT ms':>7} {'load s':>6} {'RSS MB':>6} "
    print(head + f"{'GB/tok':>6} {'% bound':>7}")
    for path, by_threads in results.items():
        for t, r in by_threads.items():
            gb = r["weight_bytes"] / 1e9
            ratio = r["tokens_per_s"] / base[t]["tokens_per_s"] if base and t in base else float("nan")
            r.update(gb_per_token=gb, speedup=ratio, fraction_of_bound=r["tokens_per_s"] * gb / bw[t])
            bound = 100 * r["fraction_of_bound"]
            print(f"{PATHS[path]:42} {t:3d} {r['tokens_per_s']:6.2f} {ratio:6.2f} {r['ttft_ms']:7.0f} "
                  f"{r['load_s']:6.1f} {r['peak_rss_mb']:6.0f} {gb:6.2f} {bound:6.0f}%")  # fmt: skip
    if 1 in threads:
        print("\nSeconds per prompt (1 thread) and projected USD per 1,000 prompts (x86_64, at the memory each "
              "path needs):")  # fmt: skip
        print(f"{'path':42} {'s, +8':>6} {'s, +32':>6} {'memory':>8} {'USD, +8':>8} {'USD, +32':>8}")
        for path, by_threads in results.items():
            if 1 not in by_threads:
                continue
            c8, memory = usd_per_1000(by_threads, 8, args.prompts)
            c32, _ = usd_per_1000(by_threads, 32, args.prompts)
            by_threads[1].update(memory_mb=memory, usd_per_1000={"8": c8, "32": c32})
            s8, s32 = (by_threads[1]["walls"][n] / args.prompts for n in ("8", "32"))
            print(f"{PATHS[path]:42} {s8:6.2f} {s32:6.2f} {memory:5d} MB {c8:8.4f} {c32:8.4f}")
    if args.json:
        args.json.write_text(json.dumps({"bandwidth_gb_s": bw, "results": results}, indent=2, default=str))


if __name__ == "__main__":
    main()
