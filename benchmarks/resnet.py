"""ResNet-50 three ways, side by side in one run: whole model, five-stage pipeline, data-parallel fan-out.

    python benchmarks/resnet.py                      # 50 real ImageNet photos, full-size ResNet-50
    python benchmarks/resnet.py --fanout 10 --json out.json

Every function runs in a fresh interpreter (its own cold start) with one thread (Lambda's CPU share at
1,769 MB), through the real runtime and adapter, one image per invocation. Measured per function:
init (import + graph load), inference per image (median), peak RSS; per stage boundary: bytes per image
and encode + write + read + decode time of each activation encoding. Projected, and labelled so: S3
time between stages on AWS (assumed first-byte latency and throughput, see the flags), throughput for
the 50 images per scheme, and Lambda + Step Functions cost. Weights are random (compute does not depend
on their values); preprocessing of the real photos is part of each image's time.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA, ROOT

WORKER = """
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {src!r})
from mlinfer.runtime.handler import InferenceRuntime
from mlinfer.runtime.events import parse_event
from mlinfer.local.context import peak_rss_mb
rt = InferenceRuntime({model!r})
init_ms = (time.perf_counter() - t0) * 1000
lines = [json.loads(x) for x in open({inputs!r})]
out, times = [], []
for item in lines:
    t = time.perf_counter()
    results, _ = rt.run_batch(parse_event({{"items": [item], "options": {options!r}}}))
    times.append((time.perf_counter() - t) * 1000)
    out.append(results[0].to_line())
with open({outputs!r}, "w") as fh:
    fh.writelines(json.dumps(o) + "\\n" for o in out)
print(json.dumps({{"init_ms": init_ms, "times_ms": times, "peak_rss_mb": peak_rss_mb()}}))
"""


def photos(n: int) -> list[Path]:
    shared = sorted((DATA / "imagenet-samples").glob("*.JPEG"))
    files = shared or sorted((ROOT / "events" / "images").glob("*.jpg"))
    return [files[i % len(files)] for i in range(n)]


def run_function(
    model: str, model_dir: Path, inputs: Path, outputs: Path, options: dict, precision: str = "fp32"
) -> dict:
    code = WORKER.format(src=str(ROOT / "src"), model=model, inputs=str(inputs), outputs=str(outputs), options=options)
    quiet = {
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
    env = {**os.environ, **quiet, "MODEL_DIR": str(model_dir), "MLINFER_THREADS": "1", "OMP_NUM_THREADS": "1",
           "RESNET_PRECISION": precision}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def encoding_table(model_dir: Path, images: list[Path], work: Path) -> list[dict]:
    """Per stage boundary and encoding: bytes per image, and encode+write+read+decode ms per image."""
    import numpy as np

    from mlinfer.models import activations as act
    from mlinfer.models.registry import load_model

    adapters = [load_model(f"resnet50_stage{k}", model_dir) for k in range(4)]
    x = np.stack([adapters[0].validate({"image": base64.b64encode(p.read_bytes()).decode()}) for p in images[:8]])
    rows = []
    for k, adapter in enumerate(adapters):
        x = adapter.session.run(None, {adapter.input_name: x})[0]
        for enc in act.ENCODINGS:
            t = time.perf_counter()
            body = act.encode(x, enc)
            path = work / f"boundary{k}{act.SUFFIX[enc]}"
            path.write_bytes(body)
            back = act.decode(path.read_bytes(), enc)
            ms = (time.perf_counter() - t) * 1000 / len(x)
            err = float(np.abs(back - x).max())
            rows.append({"after_stage": k, "shape": list(x.shape[1:]), "encoding": enc,
                         "bytes_per_image": len(body) / len(x), "ms_per_image": ms, "max_abs_err": err})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="images (the shared set has 50)")
    parser.add_argument("--fanout", type=int, default=10, help="functions in the data-parallel scheme")
    parser.add_argument("--memory", type=int, default=1769, help="MB assumed for the cost projection (1 vCPU)")
    parser.add_argument("--encoding", default="fp16", help="activation encoding between stages")
    parser.add_argument("--precision", choices=["int8", "fp32"], default="int8", help="graphs the functions run")
    parser.add_argument("--s3-latency-ms", type=float, default=25.0, help="assumed S3 first-byte latency")
    parser.add_argument("--s3-mb-per-s", type=float, default=90.0, help="assumed single-stream S3 throughput")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mlinfer-bench" / "resnet")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from mlinfer.bench.machine import describe

    print(describe(), flush=True)
    from mlinfer.build.resnet_export import build_random, export
    from mlinfer.cost.pricing import project_lambda_cost, s3_request_cost
    from mlinfer.cost.stepfunctions import parallel_transitions, pipeline_transitions, stepfunctions_cost

    model_dir = args.work / "models"
    if not (model_dir / "resnet50" / "stage4.onnx").exists():
        export(build_random(args.work / "source"), model_dir / "resnet50")
    guard_result = None
    if args.precision == "int8":
        from mlinfer.build.resnet_quantize import guard, load_images, quantize_model_dir

        guard_result = guard(args.work / "int8-guard")  # the trained digits network, through the same code
        if not (model_dir / "resnet50" / "stage4.int8.onnx").exists():
            meta = json.loads((model_dir / "resnet50" / "meta.json").read_text())
            quantize_model_dir(model_dir / "resnet50", load_images(ROOT / "events" / "images", meta))
    images = photos(args.n)
    items = args.work / "images.jsonl"
    items.write_text("".join(json.dumps({"id": f"{i}-{p.stem}", "image": base64.b64encode(p.read_bytes()).decode()})
                             + "\n" for i, p in enumerate(images)))  # fmt: skip

    acts = args.work / "activations"
    options = {"activations": str(acts), "encoding": args.encoding}
    whole = run_function("resnet50", model_dir, items, args.work / "whole.jsonl", {}, args.precision)
    fp32 = whole
    if args.precision == "int8":  # the fp32 graph beside it, on the same photos, for the ratio and agreement
        fp32 = run_function("resnet50", model_dir, items, args.work / "whole-fp32.jsonl", {}, "fp32")
    stages, inputs = [], items
    for k in range(5):
        out = args.work / f"stage{k}.jsonl"
        stages.append(run_function(f"resnet50_stage{k}", model_dir, inputs, out, options, args.precision))
        inputs = out
    want = [json.loads(x)["result"]["top5"] for x in (args.work / "whole.jsonl").read_text().splitlines()]
    got = [json.loads(x)["result"]["top5"] for x in (args.work / "stage4.jsonl").read_text().splitlines()]
    pairs = list(zip(want, got, strict=True))
    top5_same = sum([a["class"] for a in w] == [a["class"] for a in g] for w, g in pairs)
    top5_set = sum({a["class"] for a in w} == {a["class"] for a in g} for w, g in pairs)
    top1_same = sum(w[0]["class"] == g[0]["class"] for w, g in pairs)
    distinct = len({w[0]["class"] for w in want})
    boundaries = [json.loads(x)["result"]["activation"] for k in range(4)
                  for x in (args.work / f"stage{k}.jsonl").read_text().splitlines()[:1]]  # fmt: skip
    encodings = encoding_table(model_dir, images, args.work)

    med = lambda r: statistics.median(r["times_ms"])  # noqa: E731
    n, fan = args.n, args.fanout

    # S3 between stage functions on AWS (projection): a PUT after stages 0-3 and a GET before stages 1-4.
    def s3_round_trip_ms(nbytes: float) -> float:  # a PUT and a GET (projection, from the flags)
        return 2 * args.s3_latency_ms + 2 * nbytes / (args.s3_mb_per_s * 1e6) * 1000

    s3_ms = [s3_round_trip_ms(b["bytes"]) for b in boundaries]
    stage_ms = [med(s) + (s3_ms[k] if k < 4 else 0) for k, s in enumerate(stages)]
    pipe_latency = sum(stage_ms)
    pipe_total_ms = max(s["init_ms"] for s in stages) + pipe_latency + (n - 1) * max(stage_ms)
    base_total_ms = whole["init_ms"] + sum(whole["times_ms"])
    fan_total_ms = whole["init_ms"] + med(whole) * -(-n // fan)
    cost = {
        "baseline": project_lambda_cost(whole["times_ms"], args.memory, init_ms=[whole["init_ms"]]).total,
        "pipeline": sum(
            project_lambda_cost(
                [t + (s3_ms[k] if k < 4 else 0) for t in s["times_ms"]], args.memory, init_ms=[s["init_ms"]]
            ).total
            for k, s in enumerate(stages)
        )
        + stepfunctions_cost(pipeline_transitions(n)).total
        + s3_request_cost(puts=4 * n, gets=4 * n),  # one object per stage boundary per micro-batch
        "data-parallel": project_lambda_cost(whole["times_ms"], args.memory, init_ms=[whole["init_ms"]] * fan).total
        + stepfunctions_cost(parallel_transitions(fan)).total,
    }
    # Per-invocation requests: the pipeline and the baseline are invoked once per image here.
    table = [
        {"scheme": "baseline (whole model)", "ms_per_image": med(whole), "init_ms": whole["init_ms"],
         "peak_rss_mb": whole["peak_rss_mb"], "functions": 1, "transfer_ms_per_image": 0.0,
         "time_50_s": base_total_ms / 1000, "cost": cost["baseline"]},
        {"scheme": "pipeline (5 stage functions)", "ms_per_image": pipe_latency,
         "init_ms": max(s["init_ms"] for s in stages), "peak_rss_mb": max(s["peak_rss_mb"] for s in stages),
         "functions": 5, "transfer_ms_per_image": sum(s3_ms), "time_50_s": pipe_total_ms / 1000,
         "cost": cost["pipeline"]},
        {"scheme": f"data-parallel ({fan} functions)", "ms_per_image": med(whole), "init_ms": whole["init_ms"],
         "peak_rss_mb": whole["peak_rss_mb"], "functions": fan, "transfer_ms_per_image": 0.0,
         "time_50_s": fan_total_ms / 1000, "cost": cost["data-parallel"]},
    ]  # fmt: skip

    print(f"ResNet-50 (25.6M parameters, random weights), {n} real ImageNet photos, 1 thread per function, "
          f"{os.cpu_count()} host CPUs; {args.precision} graphs; activations {args.encoding}\n")  # fmt: skip
    if args.precision == "int8":
        int8_top = [json.loads(x)["result"]["top5"] for x in (args.work / "whole.jsonl").read_text().splitlines()]
        fp32_top = [json.loads(x)["result"]["top5"] for x in (args.work / "whole-fp32.jsonl").read_text().splitlines()]
        same1 = sum(a[0]["class"] == b[0]["class"] for a, b in zip(fp32_top, int8_top, strict=True))
        overlap = statistics.mean(len({c["class"] for c in a} & {c["class"] for c in b}) / 5
                                  for a, b in zip(fp32_top, int8_top, strict=True))  # fmt: skip
        print(f"int8 against fp32, whole model, 1 thread: {med(fp32):.1f} -> {med(whole):.1f} ms/image "
              f"({med(fp32) / med(whole):.2f}x), peak RSS {fp32['peak_rss_mb']:.0f} -> {whole['peak_rss_mb']:.0f} MB; "
              f"same top-1 {same1}/{n}, top-5 overlap {overlap:.1%} (random network: near-ties flip)")  # fmt: skip
        g = guard_result or {}
        print(
            f"accuracy guard (small ResNet trained here on scikit-learn's digits, {g['items']} held out): "
            f"accuracy fp32 {g['accuracy']['fp32']:.1%}, int8 {g['accuracy']['int8']:.1%}; top-1 agreement "
            f"whole {g['whole']['top1']:.2%}, five stages chained {g['stages']['top1']:.2%} (>= 99% needed)\n"
        )
    print("per function (fresh interpreter each):")
    print(f"  {'function':18} {'init ms':>8} {'ms/image':>9} {'peak RSS MB':>12}")
    for name, r in [("resnet50", whole)] + [(f"resnet50_stage{k}", s) for k, s in enumerate(stages)]:
        print(f"  {name:18} {r['init_ms']:8.0f} {med(r):9.1f} {r['peak_rss_mb']:12.0f}")
    print("\nbetween stages (per image; encode + write + read + decode on local disk):")
    print(f"  {'after':6} {'shape':>15} {'encoding':>10} {'bytes':>10} {'ms':>7} {'+ S3 ms':>8} {'max err':>9}")
    for e in encodings:
        e["with_s3_ms"] = e["ms_per_image"] + s3_round_trip_ms(e["bytes_per_image"])
        shape = "x".join(map(str, e["shape"]))
        print(f"  {e['after_stage']:<6} {shape:>15} {e['encoding']:>10} {e['bytes_per_image']:10.0f} "
              f"{e['ms_per_image']:7.2f} {e['with_s3_ms']:8.1f} {e['max_abs_err']:9.2e}")  # fmt: skip
    print(f"  projected S3 time per boundary on AWS ({args.s3_latency_ms:.0f} ms first byte, "
          f"{args.s3_mb_per_s:.0f} MB/s, PUT + GET): {', '.join(f'{t:.0f}' for t in s3_ms)} ms")  # fmt: skip
    print(f"\npipeline against the whole model ({distinct} distinct top-1 classes among the {n} images): top-5 "
          f"identical {top5_same}/{n}, same five classes {top5_set}/{n}, same top-1 {top1_same}/{n}\n")  # fmt: skip
    print(
        f"  {'scheme':30} {'ms/image':>9} {'init ms':>8} {'peak MB':>8} {'S3 ms':>6} {f'{n} imgs s':>10} {'cost $':>10}"
    )
    for t in table:
        print(f"  {t['scheme']:30} {t['ms_per_image']:9.1f} {t['init_ms']:8.0f} {t['peak_rss_mb']:8.0f} "
              f"{t['transfer_ms_per_image']:6.0f} {t['time_50_s']:10.2f} {t['cost']:10.7f}")  # fmt: skip
    print(f"  (time and cost are projections at {args.memory} MB, x86_64, us-east-1: baseline = init + {n} images "
          f"in sequence; pipeline = slowest init + one image's latency + {n - 1} x the slowest stage; "
          f"data-parallel = init + ceil({n}/{fan}) images)")  # fmt: skip
    if args.json:
        functions = {"resnet50": whole, **{f"stage{k}": s for k, s in enumerate(stages)}}
        agreement = {"top5_same": top5_same, "top5_set": top5_set, "top1_same": top1_same, "distinct_top1": distinct}
        out = {"table": table, "functions": functions, "encodings": encodings, "s3_ms": s3_ms, "n": n, **agreement,
               "precision": args.precision, "fp32_whole": fp32, "int8_guard": guard_result}  # fmt: skip
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
