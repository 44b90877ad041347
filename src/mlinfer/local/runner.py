"""The local runner: a whole batch job on this machine, with the same code path as the AWS workflow.

The input is planned into batches exactly as the workflow's Plan step does; ``parallel`` mode runs the
batches on up to ``concurrency`` worker processes (each a fresh interpreter that loads the model once,
like a Lambda execution environment), ``monolithic`` runs the workflow's cursor loop on one worker; the
workflow's summariser then writes ``results.jsonl`` and ``summary.json``. Workers write Lambda-style
``START``/``END``/``REPORT`` lines and the functions' EMF metrics to ``DIR/logs/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

from mlinfer.cost.pricing import billed_ms
from mlinfer.local.context import LocalContext, peak_rss_mb
from mlinfer.runtime.storage import read_bytes, write_bytes
from mlinfer.workflow.layout import RunLayout
from mlinfer.workflow.plan import RunRequest, make_plan
from mlinfer.workflow.summary import summarize_run

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
    timeout_s: float = 900.0
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


# --- worker process (one "execution environment") -------------------------------------------------------

_WORKER: dict[str, Any] = {}


def worker_init(model: str, model_dir: str | None, memory_mb: int, architecture: str, log_dir: str) -> None:
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


def worker_invoke(event: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """One invocation of the handler, framed by Lambda-style platform log lines."""
    ctx = LocalContext(
        function_name=f"mlinfer-{os.environ['MODEL_NAME']}", memory_limit_in_mb=_WORKER["memory"], timeout_s=timeout_s
    )
    log = _WORKER["log"]
    cold, _WORKER["cold"] = _WORKER["cold"], False
    log.write(f"START RequestId: {ctx.aws_request_id} Version: $LATEST\n")
    t0 = time.perf_counter()
    error, response = None, {}
    with contextlib.redirect_stdout(log):
        try:
            response = _WORKER["handler"](event, ctx)
        except Exception as exc:  # a failed invocation: recorded like the workflow's Catch does
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
    duration = (time.perf_counter() - t0) * 1000
    rss_mb = peak_rss_mb()
    init = f"\tInit Duration: {_WORKER['init_ms']:.2f} ms" if cold else ""
    billed = billed_ms(duration + (_WORKER["init_ms"] if cold else 0.0))  # Lambda bills INIT since 2025-08
    log.write(f"END RequestId: {ctx.aws_request_id}\n")
    log.write(
        f"REPORT RequestId: {ctx.aws_request_id}\tDuration: {duration:.2f} ms"
        f"\tBilled Duration: {billed} ms\tMemory Size: {_WORKER['memory']} MB"
        f"\tMax Memory Used: {rss_mb:.0f} MB{init}\t\n"
    )
    return {
        "event": event,
        "response": response,
        "error": error,
        "duration_ms": duration,
        "init_ms": _WORKER["init_ms"] if cold else None,
        "max_rss_mb": rss_mb,
        "request_id": ctx.aws_request_id,
    }


# --- the job ------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """Summary (as written to ``summary.json``) and where the files are."""

    summary: dict[str, Any]
    results_path: Path
    summary_path: Path
    invocations: list[dict[str, Any]] = field(default_factory=list)


def _pool(cfg: RunConfig, workers: int, log_dir: Path) -> ProcessPoolExecutor:
    init_args = (cfg.model, str(cfg.model_dir), cfg.memory_mb, cfg.architecture, str(log_dir))
    return ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=worker_init, initargs=init_args)


def _run_parallel(cfg: RunConfig, entries: list[dict[str, Any]], log_dir: Path) -> Iterator[dict[str, Any]]:
    """Batches on up to ``concurrency`` workers; at most two queued per worker (bounded memory)."""
    workers = max(1, min(cfg.concurrency, len(entries)))
    with _pool(cfg, workers, log_dir) as pool:
        queue = iter(entries)
        pending: set[Future] = set()

        def submit(entry: dict[str, Any]) -> None:
            event = {"source": entry["source"], "output": entry["output"], "batch": entry["index"]}
            pending.add(pool.submit(worker_invoke, event, cfg.timeout_s))

        for entry in queue:
            submit(entry)
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
                nxt = next(queue, None)
                if nxt is not None:
                    submit(nxt)


def _run_monolithic(cfg: RunConfig, plan_uri: str, log_dir: Path) -> Iterator[dict[str, Any]]:
    """The workflow's monolithic loop: invoke with a cursor until the function reports it is done."""
    with _pool(cfg, 1, log_dir) as pool:
        cursor = 0
        while True:
            inv = pool.submit(worker_invoke, {"plan": {"uri": plan_uri}, "cursor": cursor}, cfg.timeout_s).result()
            yield inv
            if inv["error"] or inv["response"]["done"]:
                return
            cursor = inv["response"]["cursor"]


def run_local(cfg: RunConfig) -> RunResult:
    """Run the whole job; write ``results.jsonl`` (one line per input line, in order) and ``summary.json``."""
    from tqdm import tqdm

    from mlinfer.models.registry import artifact_path, get_spec, model_dir

    get_spec(cfg.model)  # unknown model: fail before starting workers
    cfg.model_dir = cfg.model_dir or model_dir()
    if not artifact_path(cfg.model, cfg.model_dir).is_dir():
        where = artifact_path(cfg.model, cfg.model_dir)
        raise FileNotFoundError(f"no trained model at {where}; train it first: mlinfer train --models {cfg.model}")
    if not cfg.input.is_file():
        raise FileNotFoundError(f"input file not found: {cfg.input}")
    cfg.output.mkdir(parents=True, exist_ok=True)
    log_dir = cfg.output / "logs"
    log_dir.mkdir(exist_ok=True)
    request = RunRequest(
        model=cfg.model,
        input=str(cfg.input.resolve()),
        output=str(cfg.output.resolve()) + "/",
        batch_size=cfg.batch_size,
        max_concurrency=min(cfg.concurrency, 10_000),
        mode=cfg.mode,
        tolerated_failure_percentage=100,
    )
    t0 = time.perf_counter()
    run = make_plan(request, run_id=f"local-{uuid.uuid4().hex[:8]}")
    entries = json.loads(read_bytes(run["planUri"]))
    layout = RunLayout(run["prefix"])
    invocations: list[dict[str, Any]] = []
    with tqdm(total=len(entries), unit="batch", disable=not cfg.progress, file=sys.stderr, leave=False) as bar:
        if cfg.mode == "parallel":
            stream = _run_parallel(cfg, entries, log_dir)
        else:
            stream = _run_monolithic(cfg, run["planUri"], log_dir)
        for inv in stream:
            invocations.append(inv)
            if inv["error"] and "batch" in inv["event"]:
                record = {"Error": inv["error"]["errorType"], "Cause": json.dumps(inv["error"])}
                write_bytes(layout.batch_error(inv["event"]["batch"]), json.dumps(record).encode())
            bar.update(inv["response"].get("batches", 1) if not inv["error"] else 1)
    wall_s = time.perf_counter() - t0

    summary = summarize_run(
        run,
        region=cfg.region,
        durations_ms=[inv["duration_ms"] for inv in invocations],
        init_ms=[inv["init_ms"] for inv in invocations if inv["init_ms"] is not None],
        peak_memory_mb=round(max((inv["max_rss_mb"] for inv in invocations), default=0.0), 1),
        wall_time_s=wall_s,
        memory_mb=cfg.memory_mb,
        architecture=cfg.architecture,
    )
    summary["cost"]["label"] = "projection: durations measured on this machine, priced as Lambda and Step Functions"
    write_bytes(layout.summary, (json.dumps(summary, indent=2) + "\n").encode())
    return RunResult(summary, Path(layout.results), Path(layout.summary), invocations)
