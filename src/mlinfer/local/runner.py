"""The local runner: a whole batch job on this machine with the same handler code as the images.

Input lines are cut into batches; ``parallel`` mode runs them on up to ``concurrency`` worker processes
(each a fresh interpreter that loads the model once, like a Lambda execution environment), ``monolithic``
on one worker in sequence. Each worker writes Lambda-style ``START``/``END``/``REPORT`` lines and the
functions' EMF metrics to ``DIR/logs/``, so the cost tooling reads local and AWS logs alike.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

from mlinfer.cost.pricing import billed_ms, project_lambda_cost
from mlinfer.local.context import LocalContext

Mode = Literal["parallel", "monolithic"]


@dataclass
class RunConfig:
    """What the user asked for."""

    model: str
    input: Path
    output: Path
    batch_size: int = 100
    concurrency: int = 4
    memory_mb: int = 1024
    architecture: str = "x86_64"
    mode: Mode = "parallel"
    model_dir: Path | None = None
    region: str = "us-east-1"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 128 <= self.memory_mb <= 10240:
            raise ValueError("memory must be between 128 and 10240 MB (Lambda's range)")
        if self.architecture not in ("x86_64", "arm64"):
            raise ValueError("architecture must be x86_64 or arm64")
        if self.mode not in ("parallel", "monolithic"):
            raise ValueError("mode must be parallel or monolithic")


@dataclass
class InputLine:
    """One input line: the parsed item, or why it cannot be sent."""

    line: int
    item: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    id: Any = None


def read_input(path: Path) -> list[InputLine]:
    """Parse every line; a line that is not a JSON object with an ``id`` is kept as an error."""
    out = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, raw in enumerate(fh):
            text = raw.rstrip("\n")
            try:
                obj = json.loads(text)
            except ValueError as exc:
                out.append(InputLine(n, error={"type": "InvalidJson", "message": f"line {n}: {exc}"}))
                continue
            if not isinstance(obj, dict):
                msg = f"line {n}: expected a JSON object, got {type(obj).__name__}"
                out.append(InputLine(n, error={"type": "InvalidItem", "message": msg}))
            elif "id" not in obj:
                out.append(InputLine(n, error={"type": "MissingId", "message": f"line {n}: no 'id' field"}))
            else:
                out.append(InputLine(n, item=obj, id=obj["id"]))
    return out


def make_batches(lines: list[InputLine], batch_size: int) -> list[list[InputLine]]:
    """Consecutive batches of the sendable lines, in input order."""
    valid = [ln for ln in lines if ln.item is not None]
    return [valid[i : i + batch_size] for i in range(0, len(valid), batch_size)]


# --- worker process (one "execution environment") -------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _worker_init(model: str, model_dir: str | None, memory_mb: int, architecture: str, log_dir: str) -> None:
    """Runs once per worker: Lambda-like environment, then the INIT phase (imports + model load)."""
    os.environ.update(
        MODEL_NAME=model,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(memory_mb),
        MLINFER_ARCHITECTURE=architecture,
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_SERVICE_NAME="mlinfer",
        POWERTOOLS_METRICS_NAMESPACE=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "MLInference"),
    )
    if model_dir:
        os.environ["MODEL_DIR"] = model_dir
    log = open(Path(log_dir) / f"worker-{os.getpid()}.log", "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(log):
        from mlinfer.runtime.handler import create_handler

        handler = create_handler(model)
    _WORKER.update(handler=handler, log=log, init_ms=(time.perf_counter() - t0) * 1000, cold=True, memory=memory_mb)


def _worker_invoke(index: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    """One invocation: the handler on one batch, framed by Lambda-style platform log lines."""
    ctx = LocalContext(function_name=f"mlinfer-{os.environ['MODEL_NAME']}", memory_limit_in_mb=_WORKER["memory"])
    log: io.TextIOBase = _WORKER["log"]
    cold, _WORKER["cold"] = _WORKER["cold"], False
    log.write(f"START RequestId: {ctx.aws_request_id} Version: $LATEST\n")
    t0 = time.perf_counter()
    error = None
    response: dict[str, Any] = {}
    with contextlib.redirect_stdout(log):
        try:
            response = _WORKER["handler"]({"items": items, "batch": index}, ctx)
        except Exception as exc:  # a failed invocation; its items are reported as errors
            error = f"{type(exc).__name__}: {exc}"
    duration = (time.perf_counter() - t0) * 1000
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    init = f"\tInit Duration: {_WORKER['init_ms']:.2f} ms" if cold else ""
    log.write(f"END RequestId: {ctx.aws_request_id}\n")
    log.write(
        f"REPORT RequestId: {ctx.aws_request_id}\tDuration: {duration:.2f} ms"
        f"\tBilled Duration: {billed_ms(duration)} ms\tMemory Size: {_WORKER['memory']} MB"
        f"\tMax Memory Used: {rss_mb:.0f} MB{init}\t\n"
    )
    return {
        "batch": index,
        "response": response,
        "error": error,
        "duration_ms": duration,
        "cold": cold,
        "init_ms": _WORKER["init_ms"] if cold else None,
        "max_rss_mb": rss_mb,
        "request_id": ctx.aws_request_id,
        "worker": os.getpid(),
    }


# --- the job ------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """Summary (as written to ``summary.json``) and where the files are."""

    summary: dict[str, Any]
    results_path: Path
    summary_path: Path
    invocations: list[dict[str, Any]] = field(default_factory=list)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="batch", disable=not enabled, file=sys.stderr, leave=False)


def _run_batches(cfg: RunConfig, batches: list[list[InputLine]], log_dir: Path) -> Iterator[dict[str, Any]]:
    workers = 1 if cfg.mode == "monolithic" else max(1, min(cfg.concurrency, len(batches)))
    init_args = (
        cfg.model,
        str(cfg.model_dir) if cfg.model_dir else None,
        cfg.memory_mb,
        cfg.architecture,
        str(log_dir),
    )
    with ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_worker_init, initargs=init_args
    ) as pool:
        pending: set[Future] = set()
        queue = iter(enumerate(batches))
        # Submit no more than the workers can take, so the bound on concurrency is also a bound on memory.
        for index, batch in queue:
            pending.add(pool.submit(_worker_invoke, index, [ln.item for ln in batch]))
            if len(pending) >= workers * 2:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.add(pool.submit(_worker_invoke, nxt[0], [ln.item for ln in nxt[1]]))


def run_local(cfg: RunConfig) -> RunResult:
    """Run the whole job; write ``results.jsonl`` (one line per input line, in order) and ``summary.json``."""
    from mlinfer.models.registry import get_spec, model_dir

    get_spec(cfg.model)  # unknown model: fail before starting workers
    artifact_root = cfg.model_dir or model_dir()
    if not (artifact_root / cfg.model).is_dir():
        raise FileNotFoundError(
            f"no trained model at {artifact_root / cfg.model}; train it first: mlinfer train --models {cfg.model}"
        )
    cfg.model_dir = artifact_root
    lines = read_input(cfg.input)
    batches = make_batches(lines, cfg.batch_size)
    cfg.output.mkdir(parents=True, exist_ok=True)
    log_dir = cfg.output / "logs"
    log_dir.mkdir(exist_ok=True)

    outputs: dict[int, dict[str, Any]] = {
        ln.line: {"id": ln.id, "line": ln.line, "error": ln.error} for ln in lines if ln.error
    }
    invocations: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with _progress(len(batches), cfg.progress) as bar:
        for inv in _run_batches(cfg, batches, log_dir):
            batch = batches[inv["batch"]]
            if inv["error"]:
                for ln in batch:
                    outputs[ln.line] = {"id": ln.id, "error": {"type": "BatchFailed", "message": inv["error"]}}
            else:
                for ln, res in zip(batch, inv["response"]["results"], strict=True):
                    outputs[ln.line] = res
            invocations.append({k: v for k, v in inv.items() if k != "response"})
            bar.update(1)
    wall_s = time.perf_counter() - t0

    results_path = cfg.output / "results.jsonl"
    with results_path.open("w", encoding="utf-8") as fh:
        for ln in lines:
            fh.write(json.dumps(outputs[ln.line], ensure_ascii=False) + "\n")

    summary = _summarise(cfg, lines, outputs, batches, invocations, wall_s)
    summary_path = cfg.output / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return RunResult(summary, results_path, summary_path, invocations)


def _summarise(
    cfg: RunConfig,
    lines: list[InputLine],
    outputs: dict[int, dict[str, Any]],
    batches: list[list[InputLine]],
    invocations: list[dict[str, Any]],
    wall_s: float,
) -> dict[str, Any]:
    errors = Counter(o["error"]["type"] for o in outputs.values() if o.get("error"))
    durations = sorted(inv["duration_ms"] for inv in invocations)
    inits = [inv["init_ms"] for inv in invocations if inv["cold"]]
    cost = project_lambda_cost(durations, cfg.memory_mb, cfg.architecture, init_ms=inits, region=cfg.region)
    n_results = sum(1 for o in outputs.values() if "result" in o)
    return {
        "model": cfg.model,
        "mode": cfg.mode,
        "input": str(cfg.input),
        "config": {
            "batch_size": cfg.batch_size,
            "concurrency": 1 if cfg.mode == "monolithic" else cfg.concurrency,
            "memory_mb": cfg.memory_mb,
            "architecture": cfg.architecture,
            "region": cfg.region,
        },
        "items": len(lines),
        "results": n_results,
        "errors": sum(errors.values()),
        "error_types": dict(errors),
        "batches": len(batches),
        "failed_batches": sum(1 for inv in invocations if inv["error"]),
        "wall_time_s": round(wall_s, 3),
        "batch_latency_ms": {
            "p50": round(_percentile(durations, 50), 2),
            "p95": round(_percentile(durations, 95), 2),
            "max": round(max(durations, default=0.0), 2),
        },
        "cold_starts": len(inits),
        "init_ms": {"median": round(statistics.median(inits), 2) if inits else 0.0},
        "peak_memory_mb": round(max((inv["max_rss_mb"] for inv in invocations), default=0.0), 1),
        "projected_cost": {
            "label": "projection: durations measured on this machine, priced as Lambda invocations",
            **cost.to_dict(),
            "per_1000_items_usd": cost.per_item(len(lines)) * 1000,
        },
    }
