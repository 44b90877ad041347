"""The ``mlinfer`` command: run batch jobs locally, train the bundled models, list models.

mlinfer train                                    # scikit-learn models on the shipped sample -> ./models
mlinfer run --model kmeans --input events/sample-input.jsonl --output out/kmeans
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mlinfer.models.registry import MODELS, is_trainable

#: Exit codes of ``mlinfer run`` (README, "Exit codes").
EXIT_OK = 0  # every item has a result
EXIT_FAILED = 1  # the run failed: too many failed batches, no item got a result, or the execution failed
EXIT_USAGE = 2  # the run could not start: bad arguments, a missing file or model
EXIT_PARTIAL = 3  # the run completed, and some items are errors (each with its reason in results.jsonl)
EXIT_INTERRUPTED = 130  # Ctrl-C; a local run continues with --resume


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 batch``, ``2 batches``."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def _other_services(cost: dict) -> list[str]:
    """S3 requests and CloudWatch Logs lines of the cost (absent from summaries written before they were)."""
    out = []
    if "s3" in cost:
        s3 = cost["s3"]
        gets, puts = plural(s3["gets"], "GET/HEAD request"), plural(s3["puts"], "PUT request")
        out.append(f"    S3 ${s3['usd']:.6f}: {gets}, {puts}")
    if "logs" in cost:
        logs = cost["logs"]
        if logs.get("bytes") is None:
            out.append(f"    CloudWatch Logs: {logs.get('note', 'not measured')}")
        else:
            out.append(f"    CloudWatch Logs ${logs['usd']:.6f}: {logs['bytes'] / 1e6:.2f} MB ingested")
    return out


def _print_summary(summary: dict) -> None:
    cost, lat, cfg = summary["cost"], summary["batch_latency_ms"], summary["config"]
    lam, sfn = cost["lambda"], cost["stepfunctions"]
    errors = f" {summary['error_types']}" if summary["errors"] else ""
    peak = f"; peak memory {summary['peak_memory_mb']:.0f} MB" if summary.get("peak_memory_mb") else ""
    outcome = summary.get("outcome", "")
    status = summary["status"] + (f" ({outcome})" if outcome and outcome != "failed" else "")
    lines = [
        f"{summary['model']} ({summary['mode']}, batch {cfg['batch_size']}, concurrency {cfg['concurrency']}, "
        f"{cfg['memory_mb']} MB {cfg['architecture']}): {status}",
        f"  items {summary['items']:,}: {plural(summary['results'], 'result')}, "
        f"{plural(summary['errors'], 'error')}{errors}",
        f"  {plural(summary['batches'], 'batch', 'batches')} ({summary['failed_batches']} failed) in "
        f"{summary['wall_time_s']:.2f} s; batch latency p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms; "
        f"{plural(summary['cold_starts'], 'cold start')}{peak}",
    ]
    if "limits" in summary:
        lines.append(
            f"  limits: {summary['limits']} (CPU share {summary['cpu_share']:.2f} vCPU at {cfg['memory_mb']} MB)"
        )
    lines += [
        f"  cost ({cost['label']}): ${cost['total_usd']:.6f}, ${cost['per_1000_items_usd']:.6f} per 1,000 items",
        f"    Lambda ${lam['total']:.6f}: {lam['gb_seconds']:.3f} GB-s at ${lam['prices']['gb_second']}/GB-s + "
        f"{plural(lam['invocations'], 'request')}",
        f"    Step Functions ${sfn['total']:.6f}: {plural(sfn['transitions'], 'transition')}, "
        f"{plural(sfn['express_requests'], 'Express child execution')} ({lam['prices']['region']}, prices as of "
        f"{lam['prices']['as_of']})",
        *_other_services(cost),
        *[f"  warning: {w}" for w in summary.get("warnings", [])],
        f"  results: {summary['files']['results']}",
        f"  summary: {summary['files']['summary']}",
    ]
    print("\n".join(lines))


def _exit_code(summary: dict) -> int:
    if summary.get("status") != "SUCCEEDED":
        return EXIT_FAILED
    return EXIT_PARTIAL if summary.get("errors") else EXIT_OK


def cmd_run_aws(args: argparse.Namespace) -> int:
    from mlinfer.workflow.aws import run_on_aws
    from mlinfer.workflow.plan import parse_request

    if not args.stack:
        raise ValueError("--target aws needs --stack (the deployed stack's name)")
    if not args.model or not args.input:
        raise ValueError("--model and --input are required")
    payload = {
        "model": args.model,
        "input": str(args.input),
        "output": args.output_uri,
        "batchSize": args.batch_size,
        "maxConcurrency": args.concurrency,
        "mode": args.mode,
        "toleratedFailurePercentage": args.tolerated_failure_percentage,
    }
    request = parse_request({k: v for k, v in payload.items() if v is not None})
    summary = run_on_aws(args.stack, request, region=args.region, progress=not args.quiet)
    if args.json or "items" not in summary:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return _exit_code(summary)


def cmd_run(args: argparse.Namespace) -> int:
    if args.target == "aws":
        return cmd_run_aws(args)
    from mlinfer.local.runner import RunConfig, RunInterrupted, load_run, run_local

    if args.resume:
        cfg, _ = load_run(args.resume)
        cfg.progress = not args.quiet
    else:
        if not args.model or not args.input or args.output is None:
            raise ValueError("--model, --input and --output DIR are required (or --resume DIR)")
        cfg = RunConfig(
            model=args.model,
            input=Path(args.input),
            output=args.output,
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            memory_mb=args.memory,
            architecture=args.arch,
            mode=args.mode,
            model_dir=args.model_dir,
            region=args.region,
            timeout_s=args.timeout,
            progress=not args.quiet,
            limits="none" if args.no_limits else "auto",
        )
    try:
        result = run_local(cfg, resume=bool(args.resume))
    except RunInterrupted as exc:
        print(f"mlinfer: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json:
        print(json.dumps(result.summary, indent=2))
    else:
        _print_summary(result.summary)
    return _exit_code(result.summary)


def cmd_train(args: argparse.Namespace) -> int:
    from mlinfer.build.sklearn_train import train_and_save
    from mlinfer.data import SAMPLE_PATH

    names = args.models or [n for n in MODELS if is_trainable(n)]
    for meta in train_and_save(names, args.data or SAMPLE_PATH, args.out, args.limit).values():
        extra = f", held-out accuracy {meta['accuracy']}" if "accuracy" in meta else ""
        print(f"trained {meta['name']} on {meta['train_items']} texts in {meta['train_seconds']} s{extra}")
    return 0


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def cmd_bench(args: argparse.Namespace) -> int:
    from mlinfer.bench.report import build_report
    from mlinfer.bench.sweep import SweepConfig, run_sweep

    cfg = SweepConfig(
        model=args.model,
        input=Path(args.input),
        output=args.output,
        memory_mb=_ints(args.memory),
        batch_sizes=_ints(args.batch_size),
        concurrency=_ints(args.concurrency),
        architectures=args.arch.split(","),
        cold=args.cold,
        warm=args.warm,
        timeout_s=args.timeout,
        model_dir=args.model_dir,
        region=args.region,
        enforce_limits=not args.no_limits,
        progress=not args.quiet,
    )
    function = args.function
    if args.target == "aws" and function is None:
        if not args.stack:
            raise ValueError("--target aws needs --function or --stack")
        function = f"{args.stack}-{args.model}"
    path = run_sweep(cfg, function=function if args.target == "aws" else None)
    report = build_report(args.output, items=args.items)
    print(f"invocations: {path}\nreport: {report} (and report.html, plots/)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mlinfer.bench.report import build_report

    report = build_report(args.sweep, items=args.items, deadline_s=args.deadline, budget_usd=args.budget)
    print(report.read_text() if args.print else f"report: {report} (and report.html, plots/)")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from mlinfer.bench.recommend import all_options, log_bytes_per_batch, pareto_front, recommend
    from mlinfer.bench.stats import read_rows, summarize

    rows = read_rows(args.sweep / "invocations.csv")
    options = all_options(summarize(rows), args.items, args.region, log_bytes_per_batch(args.sweep, rows))
    pick = recommend(options, args.strategy, args.deadline, args.budget)
    meta_path = args.sweep / "sweep.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    local = any(r.get("target", "local") == "local" for r in rows)
    if local:
        print(f"measured on this machine ({meta.get('machine', 'CPU not recorded')}), projected to Lambda")
    if pick is None:
        print("no configuration meets the deadline/budget; the Pareto front:", file=sys.stderr)
    else:
        print(f"recommended: {pick.label()}: {pick.time_s:,.1f} s, ${pick.cost_usd:.6f} for {args.items:,} items")
        host = meta.get("host_architecture", "x86_64")
        if local and pick.architecture == "arm64" and host not in {"aarch64", "arm64"}:
            print(
                f"  note: arm64 is priced from {host} durations measured here (arm64 is 20% cheaper per GB-s);"
                " Graviton's speed for this model is not measured: sweep on arm64 or on AWS before choosing it"
            )
    print("Pareto front (time s, cost USD):")
    for o in pareto_front(options):
        print(f"  {o.label():50} {o.time_s:10,.1f} {o.cost_usd:12.6f}")
    return 0 if pick else 1


def cmd_export(args: argparse.Namespace) -> int:
    from mlinfer.build.sklearn_train import read_jsonl
    from mlinfer.models.registry import get_spec

    spec = get_spec(args.model)
    if spec.family == "resnet":
        from mlinfer.build import resnet_export

        artifact = spec.options["artifact"]
        out = args.out or Path("artifacts") / artifact
        source = ["--random"] if args.random else ["--model", args.source or spec.options["model_id"]]
        argv = ["--out", str(out), *source]
        if args.quantize != "none":  # int8 graphs beside fp32, kept only if the accuracy guard passes
            argv += ["--int8-calibration", str(args.calibration)]
        return resnet_export.main(argv)
    if spec.family == "llama":  # onnxruntime-genai's builder: int4 (fp32 where the guard rejects it)
        from mlinfer.build.llama_export import main as llama_export

        out = args.out or Path("artifacts") / args.model
        argv = ["--model", args.source or spec.options["model_id"], "--out", str(out), "--precision", args.precision]
        if args.guard_data:
            argv += ["--guard-data", str(args.guard_data)]
        return llama_export(argv + (["--no-guard"] if args.no_guard else []))
    if not spec.adapter.endswith("BertAdapter"):
        raise ValueError(f"mlinfer export handles the BERT, TinyLlama and ResNet families; {args.model} is trained")
    from mlinfer.build.bert_export import export

    source = args.source or spec.options["model_id"]
    texts = [r["text"] for r in read_jsonl(args.guard_data, 500)] if args.guard_data else None
    meta = export(source, args.out or Path("artifacts") / args.model, texts, args.quantize)
    print(json.dumps({k: meta[k] for k in ("source", "variant", "guard")}, indent=2))
    return 0


def cmd_models(_: argparse.Namespace) -> int:
    for spec in MODELS.values():
        print(f"{spec.name:16} {spec.family:12} {spec.task}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlinfer", description="Batch ML inference on AWS Lambda, and locally.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="run a batch job (locally by default)", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="exit codes: 0 every item has a result; 3 some items are errors; 1 the run failed; "
        "2 it could not start; 130 interrupted (continue with --resume DIR)",
    )  # fmt: skip
    run.add_argument("--model", choices=sorted(MODELS), help="the model to run (mlinfer models lists them)")
    run.add_argument("--input", help="JSONL or JSONL.gz file (or s3:// URI with --target aws), one item per line")
    run.add_argument("--output", type=Path, help="local: folder for results.jsonl and summary.json")
    run.add_argument("--resume", type=Path, metavar="DIR", help="local: continue an interrupted run in DIR")
    run.add_argument("--batch-size", type=int, default=100, help="items per batch (one invocation each)")
    run.add_argument("--concurrency", type=int, default=4, help="batches running at once (parallel mode)")
    run.add_argument("--memory", type=int, default=1024, help="Lambda memory size in MB (128-10240)")
    run.add_argument("--arch", choices=["x86_64", "arm64"], default="x86_64", help="architecture to price")
    run.add_argument("--mode", choices=["parallel", "monolithic"], default="parallel",
                     help="parallel: one invocation per batch; monolithic: one function works through all")  # fmt: skip
    run.add_argument("--timeout", type=float, default=900.0, help="local: seconds one invocation may run")
    run.add_argument("--no-limits", action="store_true",
                     help="local: do not confine workers to Lambda's CPU share and memory")  # fmt: skip
    run.add_argument("--target", choices=["local", "aws"], default="local", help="where to run")
    run.add_argument("--stack", help="aws: the deployed stack's name")
    run.add_argument("--output-uri", help="aws: s3:// prefix for the run's files (default: runs/<model>/<run>/)")
    run.add_argument("--tolerated-failure-percentage", type=float, default=0.0, help="aws: failed batches allowed")
    run.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    run.add_argument("--model-dir", type=Path, default=None, help="artifact root (default: $MODEL_DIR or ./models)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    train = sub.add_parser("train", help="train the scikit-learn models")
    train.add_argument("--models", nargs="*", choices=sorted(n for n in MODELS if is_trainable(n)),
                       help="default: all of them")  # fmt: skip
    train.add_argument("--data", type=Path, help="JSONL(.gz) with 'text' and 'label' (default: shipped sample)")
    train.add_argument("--out", type=Path, default=Path("models"))
    train.add_argument("--limit", type=int)
    train.set_defaults(func=cmd_train)

    bench = sub.add_parser("bench", help="sweep memory x batch size x concurrency (x architecture)")
    bench.add_argument("--model", required=True, choices=sorted(MODELS))
    bench.add_argument("--input", required=True, help="JSONL(.gz) of items; cycled to fill batches")
    bench.add_argument("--output", required=True, type=Path, help="folder for invocations.csv and the report")
    bench.add_argument("--memory", default="512,1024,1769,3008", help="MB, comma-separated (Lambda: 128-10240)")
    bench.add_argument("--batch-size", default="100", help="comma-separated")
    bench.add_argument("--concurrency", default="1", help="comma-separated")
    bench.add_argument("--arch", default="x86_64,arm64", help="architectures to price (local) ")
    bench.add_argument("--cold", type=int, default=2, help="cold starts per configuration")
    bench.add_argument("--warm", type=int, default=8, help="warm invocations per configuration")
    bench.add_argument("--timeout", type=float, default=300.0, help="seconds before an invocation is given up")
    bench.add_argument("--items", type=int, default=25_000, help="job size for the report's projections")
    bench.add_argument("--target", choices=["local", "aws"], default="local")
    bench.add_argument("--function", help="aws: function name (default: <stack>-<model>)")
    bench.add_argument("--stack", help="aws: the deployed stack's name")
    bench.add_argument("--model-dir", type=Path, default=None)
    bench.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    bench.add_argument("--no-limits", action="store_true", help="local: do not confine workers to Lambda's CPU/memory")
    bench.add_argument("--quiet", action="store_true")
    bench.set_defaults(func=cmd_bench)

    report = sub.add_parser("report", help="plots and a Markdown/HTML report of a sweep")
    report.add_argument("--sweep", required=True, type=Path, help="the folder mlinfer bench wrote")
    report.add_argument("--items", type=int, default=25_000, help="job size for projections")
    report.add_argument("--deadline", type=float, help="seconds: add the cheapest option within it")
    report.add_argument("--budget", type=float, help="USD: add the fastest option within it")
    report.add_argument("--print", action="store_true", help="print the Markdown report")
    report.set_defaults(func=cmd_report)

    rec = sub.add_parser("recommend", help="pick a configuration from a sweep: deadline, budget or strategy")
    rec.add_argument("--sweep", required=True, type=Path)
    rec.add_argument("--items", type=int, default=25_000)
    rec.add_argument("--deadline", type=float, help="seconds")
    rec.add_argument("--budget", type=float, help="USD")
    rec.add_argument("--strategy", choices=["cost", "speed", "balanced"], default="balanced")
    rec.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    rec.set_defaults(func=cmd_recommend)

    exp = sub.add_parser(
        "export", help="export a BERT, TinyLlama or ResNet model to ONNX (artifacts/<model>, for image builds)"
    )
    exp.add_argument("--model", required=True, choices=sorted(MODELS))
    exp.add_argument("--source", help="Hugging Face id or local folder (default: the registry's model id)")
    exp.add_argument("--out", type=Path, help="default: artifacts/<model>")
    exp.add_argument("--guard-data", type=Path, help="JSONL(.gz) with 'text' for the accuracy guard")
    exp.add_argument("--quantize", choices=["auto", "int8", "none"], default="auto")
    exp.add_argument("--precision", choices=["int4", "fp32"], default="int4", help="TinyLlama: weights to try first")
    exp.add_argument("--no-guard", action="store_true", help="TinyLlama: skip the accuracy guard (random weights only)")
    exp.add_argument("--random", action="store_true", help="ResNet: a full-size ResNet-50 with random weights")
    exp.add_argument("--calibration", type=Path, default=Path("events/images"),
                     help="ResNet: photos to calibrate int8 activations on (default: %(default)s)")  # fmt: skip
    exp.set_defaults(func=cmd_export)

    models = sub.add_parser("models", help="list the models")
    models.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "model_dir", None) is None and "MODEL_DIR" not in os.environ and Path("models").is_dir():
        args.model_dir = Path("models")
    from mlinfer.runtime.errors import BatchError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("mlinfer: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, OSError, RuntimeError, BatchError) as exc:
        print(f"mlinfer: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
