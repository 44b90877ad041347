"""The local runner: a whole batch job on this machine, with the same code path as the AWS workflow.

The input is planned into batches exactly as the workflow's Plan step does; ``parallel`` mode runs the
batches on up to ``concurrency`` execution environments (each a fresh interpreter that loads the model
once, confined to Lambda's CPU share and memory limit, see :mod:`mlinfer.local.environment`),
``monolithic`` runs the workflow's cursor loop on one; the workflow's summariser then writes
``results.jsonl`` and ``summary.json``.

Nothing is lost: a batch whose environment dies (out of memory, a crash, a timeout) is retried as the
workflow would retry it (:mod:`mlinfer.workflow.retries`) and, failing that, recorded so that each of its
items gets an error line with the reason. Every invocation is appended to ``DIR/invocations.jsonl`` and
every batch's results are written atomically, so an interrupted run (Ctrl-C, ``kill -9``, a reboot)
continues with ``mlinfer run --resume DIR`` without redoing finished batches.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlinfer.local.environment import Environment, EnvironmentFailure, Limits, choose_limits
from mlinfer.runtime.storage import read_bytes, write_bytes
from mlinfer.runtime.threads import available_cpus, lambda_vcpus
from mlinfer.workflow.layout import RunLayout
from mlinfer.workflow.plan import RunRequest, make_plan
from mlinfer.workflow.retries import retries_for
from mlinfer.workflow.summary import batch_lines, summarize_run

Mode = Literal["parallel", "monolithic"]
#: After this many environments in a row fail to start (the model cannot load), the remaining batches are
#: recorded as failed with that reason instead of each paying another INIT.
MAX_START_FAILURES = 3


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
    limits: str = "auto"

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
        if not 1 <= self.timeout_s <= 900:
            raise ValueError("timeout must be between 1 and 900 seconds (Lambda's range)")
        if self.limits not in ("auto", "cgroup", "scaled", "none"):
            raise ValueError("limits must be auto, cgroup, scaled or none")


@dataclass
class RunResult:
    """Summary (as written to ``summary.json``) and where the files are."""

    summary: dict[str, Any]
    results_path: Path
    summary_path: Path
    invocations: list[dict[str, Any]] = field(default_factory=list)


class RunInterrupted(Exception):
    """Ctrl-C: the finished batches are on disk; ``mlinfer run --resume DIR`` continues."""

    def __init__(self, output: Path, done: int, total: int) -> None:
        super().__init__(f"interrupted after {done} of {total} batches; continue with: mlinfer run --resume {output}")
        self.output = output


class _Environments:
    """Idle execution environments, created on demand up to the concurrency, replaced when one dies."""

    def __init__(self, cfg: RunConfig, limits: Limits, log_dir: Path) -> None:
        self.cfg, self.limits, self.log_dir = cfg, limits, log_dir
        self.idle: queue.SimpleQueue[Environment] = queue.SimpleQueue()
        self.live: set[Environment] = set()
        self.slots = iter(range(1 << 30))
        self.start_failures = 0
        self.last_start_failure: EnvironmentFailure | None = None
        self.lock = threading.Lock()

    def acquire(self) -> Environment:
        try:
            return self.idle.get_nowait()
        except queue.Empty:
            pass
        with self.lock:
            if self.start_failures >= MAX_START_FAILURES and self.last_start_failure is not None:
                raise self.last_start_failure
            slot = next(self.slots) % max(1, self.cfg.concurrency)
        cfg = self.cfg
        try:
            env = Environment(cfg.model, str(cfg.model_dir), cfg.memory_mb, self.log_dir, cfg.architecture,
                              self.limits, slot)  # fmt: skip
        except EnvironmentFailure as exc:
            with self.lock:
                self.start_failures += 1
                self.last_start_failure = exc
            raise
        with self.lock:
            self.start_failures = 0
            self.live.add(env)
        return env

    def release(self, env: Environment) -> None:
        self.idle.put(env)

    def discard(self, env: Environment) -> None:
        with self.lock:
            self.live.discard(env)
        env.close()

    def close(self) -> None:
        with self.lock:
            envs, self.live = list(self.live), set()
        for env in envs:
            env.close()


class _Job:
    """One run's files and bookkeeping: the plan, the invocation log, the batches still to do."""

    def __init__(self, cfg: RunConfig, run: dict[str, Any], limits: Limits) -> None:
        self.cfg, self.run, self.limits = cfg, run, limits
        self.layout = RunLayout(run["prefix"])
        self.entries: list[dict[str, Any]] = json.loads(read_bytes(self.layout.plan))
        self.log_dir = cfg.output / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.records_path = cfg.output / "invocations.jsonl"
        self.lock = threading.Lock()

    def done(self, entry: dict[str, Any]) -> bool:
        """A batch is finished when its results are complete or its failure is recorded."""
        lines, _ = batch_lines(self.layout, entry)
        return lines is not None or Path(self.layout.batch_error(entry["index"])).exists()

    def record(self, rec: dict[str, Any]) -> None:
        """Append one invocation (every attempt is billed) to ``invocations.jsonl``."""
        with self.lock, self.records_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")

    def records(self) -> list[dict[str, Any]]:
        if not self.records_path.exists():
            return []
        return [json.loads(x) for x in self.records_path.read_text(encoding="utf-8").splitlines() if x.strip()]

    def fail_batch(self, index: int, error_type: str, message: str) -> None:
        """Record why a batch has no results, as the workflow's RecordBatchFailure state does."""
        cause = json.dumps({"errorType": error_type, "errorMessage": message})
        write_bytes(self.layout.batch_error(index), json.dumps({"Error": error_type, "Cause": cause}).encode())

    def invoke(self, envs: _Environments, event: dict[str, Any], batch: int | None) -> dict[str, Any]:
        """One event, retried as the workflow retries it; returns the last attempt's record."""
        attempt = 0
        while True:
            env: Environment | None = None
            try:
                env = envs.acquire()
                rec = env.invoke({**event, "attempt": attempt}, self.cfg.timeout_s)
                envs.release(env)
            except EnvironmentFailure as exc:
                if env is not None:
                    envs.discard(env)
                rec = {**exc.record, "error": {"errorType": exc.error_type, "errorMessage": str(exc)}}
            rec.update(batch=batch, cursor=event.get("cursor"), attempt=attempt)
            self.record(rec)
            error = rec.get("error")
            if error and attempt < retries_for(error["errorType"]):
                attempt += 1
                continue
            return rec


def _run_parallel(job: _Job, envs: _Environments, todo: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Batches on up to ``concurrency`` environments; at most two queued per environment (bounded memory)."""
    workers = max(1, min(job.cfg.concurrency, len(todo)))

    def one(entry: dict[str, Any]) -> dict[str, Any]:
        event = {"source": entry["source"], "output": entry["output"], "batch": entry["index"]}
        rec = job.invoke(envs, event, entry["index"])
        if rec.get("error"):
            job.fail_batch(entry["index"], rec["error"]["errorType"], rec["error"]["errorMessage"])
        return rec

    with ThreadPoolExecutor(workers) as pool:
        queue_ = iter(todo)
        pending: set[Future] = {pool.submit(one, e) for _, e in zip(range(2 * workers), queue_, strict=False)}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    yield fut.result()
                    nxt = next(queue_, None)
                    if nxt is not None:
                        pending.add(pool.submit(one, nxt))
        finally:
            for fut in pending:
                fut.cancel()
            envs.close()  # a worker blocked on a dead or interrupted run ends here


def _run_monolithic(job: _Job, envs: _Environments, cursor: int) -> Iterator[dict[str, Any]]:
    """The workflow's monolithic loop: invoke with a cursor until the function reports it is done."""
    while cursor < len(job.entries):
        rec = job.invoke(envs, {"plan": {"uri": job.run["planUri"]}, "cursor": cursor}, None)
        yield rec
        if rec.get("error"):  # the batch it died on gets the reason; the rest were not run (as on AWS)
            stuck = next((e for e in job.entries[cursor:] if not job.done(e)), None)
            if stuck is not None:
                job.fail_batch(stuck["index"], rec["error"]["errorType"], rec["error"]["errorMessage"])
            return
        if rec["response"].get("done"):
            return
        cursor = rec["response"]["cursor"]


def _start(cfg: RunConfig) -> dict[str, Any]:
    """Validate, plan and write ``run.json`` (the descriptor and configuration a resume reads back)."""
    from mlinfer.models.registry import artifact_path, get_spec, missing_model_advice, model_dir

    get_spec(cfg.model)  # unknown model: fail before starting workers
    cfg.model_dir = cfg.model_dir or model_dir()
    if not artifact_path(cfg.model, cfg.model_dir).is_dir():
        raise FileNotFoundError(missing_model_advice(cfg.model, cfg.model_dir))
    if not cfg.input.is_file():
        raise FileNotFoundError(f"input file not found: {cfg.input}")
    cfg.output.mkdir(parents=True, exist_ok=True)
    if (cfg.output / "run.json").exists():
        raise ValueError(f"{cfg.output} holds a run already: continue it with --resume, or choose another --output")
    request = RunRequest(
        model=cfg.model,
        input=str(cfg.input.resolve()),
        output=str(cfg.output.resolve()) + "/",
        batch_size=cfg.batch_size,
        max_concurrency=min(cfg.concurrency, 10_000),
        mode=cfg.mode,
        tolerated_failure_percentage=100,
    )
    run = make_plan(request, run_id=f"local-{uuid.uuid4().hex[:8]}")
    config = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}
    write_bytes(str(cfg.output / "run.json"), json.dumps({"run": run, "config": config}, indent=2).encode())
    return run


def load_run(output: Path) -> tuple[RunConfig, dict[str, Any]]:
    """The configuration and descriptor of the run in ``output`` (for ``--resume``)."""
    path = output / "run.json"
    if not path.exists():
        raise FileNotFoundError(f"no run to resume in {output} (run.json missing)")
    saved = json.loads(path.read_text())
    conf = saved["config"]
    for key in ("input", "output", "model_dir"):
        conf[key] = Path(conf[key]) if conf.get(key) not in (None, "None") else None
    return RunConfig(**conf), saved["run"]


def run_local(cfg: RunConfig, resume: bool = False) -> RunResult:
    """Run the whole job (or what is left of it); write ``results.jsonl`` (one line per input line, in
    order) and ``summary.json``. Raises :class:`RunInterrupted` on Ctrl-C."""
    from tqdm import tqdm

    run = load_run(cfg.output)[1] if resume else _start(cfg)
    limits = "none" if cfg.limits == "none" else choose_limits(cfg.memory_mb, cfg.limits)
    job = _Job(cfg, run, limits)
    todo = [e for e in job.entries if not job.done(e)] if resume else job.entries
    envs = _Environments(cfg, limits, job.log_dir)
    t0 = time.perf_counter()
    total = len(job.entries)
    bar = tqdm(total=total, initial=total - len(todo), unit="batch", disable=not cfg.progress, file=sys.stderr,
               leave=False, dynamic_ncols=True)  # fmt: skip
    try:
        if cfg.mode == "parallel":
            for rec in _run_parallel(job, envs, todo):
                bar.update(1)
                del rec
        elif todo:
            for rec in _run_monolithic(job, envs, todo[0]["index"]):
                bar.update(rec["response"].get("batches", 1) if not rec.get("error") else 1)
    except KeyboardInterrupt:  # the environments and the bar are closed below
        raise RunInterrupted(cfg.output, sum(job.done(e) for e in job.entries), total) from None
    finally:
        envs.close()
        bar.close()
    wall_s = time.perf_counter() - t0 + _earlier_wall_s(cfg.output)
    (cfg.output / ".wall_s").write_text(f"{wall_s:.3f}")
    return _summarize(job, wall_s)


def _earlier_wall_s(output: Path) -> float:
    """Wall time already spent on this run by earlier (interrupted) sessions."""
    try:
        return float((output / ".wall_s").read_text())
    except (OSError, ValueError):
        return 0.0


def _summarize(job: _Job, wall_s: float) -> RunResult:
    cfg, records = job.cfg, job.records()
    share = lambda_vcpus(cfg.memory_mb)
    limits_note = {
        "cgroup": "durations measured at Lambda's CPU share and memory limit (cgroup)",
        "scaled": "CPU time scaled to Lambda's CPU share (no cgroup here)",
        "none": "durations on this machine's full cores (--no-limits)",
    }[job.limits]
    peak = max((r.get("max_rss_mb") or 0.0 for r in records), default=0.0)
    extra: dict[str, Any] = {
        "limits": job.limits,
        "cpu_share": round(share, 4),
        "invocations": len(records),
    }
    warnings = []
    if job.limits != "cgroup" and peak > cfg.memory_mb:
        warnings.append(f"peak memory {peak:.0f} MB is over {cfg.memory_mb} MB: Lambda would stop this function")
    busy = min(cfg.concurrency, len(job.entries)) if cfg.mode == "parallel" else 1
    if job.limits == "cgroup" and busy * share > available_cpus():
        warnings.append(f"{busy} environments at {share:.2f} vCPU each oversubscribe this machine's "
                        f"{available_cpus()} cores: durations are longer than on Lambda")  # fmt: skip
    if warnings:
        extra["warnings"] = warnings
    summary = summarize_run(
        job.run,
        region=cfg.region,
        durations_ms=[r["duration_ms"] for r in records],
        init_ms=[r["init_ms"] for r in records if r.get("init_ms") is not None],
        peak_memory_mb=round(peak, 1),
        wall_time_s=wall_s,
        memory_mb=cfg.memory_mb,
        architecture=cfg.architecture,
        retries=sum(1 for r in records if r.get("attempt")),
        log_bytes=sum(p.stat().st_size for p in job.log_dir.glob("*.log")),
        label=f"projection: {limits_note}",
        extra=extra,
    )
    return RunResult(summary, Path(job.layout.results), Path(job.layout.summary), records)
