"""Sweep memory x batch size x concurrency (x architecture): cold and warm invocations, one CSV row each.

Locally, each execution environment is a fresh worker process running the real handler inside a
:class:`~mlinfer.bench.limits.Sandbox` (Lambda's CPU share and memory limit for the memory size). On
AWS, the function's configuration is updated per memory size, invoked with ``LogType=Tail`` and priced
from the REPORT line, like AWS Lambda Power Tuning, and restored afterwards.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import platform
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlinfer.bench.limits import Sandbox
from mlinfer.bench.logs import parse_lines
from mlinfer.bench.machine import describe
from mlinfer.cost.pricing import lambda_cost
from mlinfer.local.environment import Environment
from mlinfer.runtime.threads import lambda_vcpus

COLUMNS = [
    "target", "model", "memory_mb", "architecture", "measured_architecture", "batch_size", "concurrency",
    "kind", "invocation", "status", "reason", "init_ms", "duration_ms", "billed_ms", "max_memory_mb",
    "items", "item_errors", "cost_usd", "cost_per_1000_items_usd", "cpu_share", "cpu_enforced",
    "memory_enforced", "request_id",
]  # fmt: skip
DEFAULT_MEMORY = [128, 256, 512, 1024, 1769, 3008, 5120, 10240]


@dataclass
class SweepConfig:
    """What to sweep. ``cold`` fresh environments and ``warm`` reuses per configuration."""

    model: str
    input: Path
    output: Path
    memory_mb: list[int] = field(default_factory=lambda: [512, 1024, 1769, 3008])
    batch_sizes: list[int] = field(default_factory=lambda: [100])
    concurrency: list[int] = field(default_factory=lambda: [1])
    architectures: list[str] = field(default_factory=lambda: ["x86_64"])
    cold: int = 2
    warm: int = 8
    timeout_s: float = 300.0
    model_dir: Path | None = None
    region: str = "us-east-1"
    enforce_limits: bool = True
    progress: bool = True


def load_items(path: Path) -> list[dict[str, Any]]:
    """Items of a JSONL file (gzip or not) for benchmark batches; lines without an id get one."""
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    items = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if line.strip():
                obj = json.loads(line)
                obj.setdefault("id", n)
                items.append({k: v for k, v in obj.items() if k in ("id", "text", "features", "prompt", "image")})
    if not items:
        raise ValueError(f"no items in {path}")
    return items


def batch_of(items: list[dict[str, Any]], size: int, start: int) -> list[dict[str, Any]]:
    """``size`` items starting at ``start``, cycling through the data set (e.g. 25,000 from 2,500)."""
    return [items[(start + j) % len(items)] for j in range(size)]


def _price_row(row: dict[str, Any], region: str) -> dict[str, Any]:
    if row.get("billed_ms"):
        cost = lambda_cost([int(row["billed_ms"])], int(row["memory_mb"]), row["architecture"], region).total
        row["cost_usd"] = cost
        row["cost_per_1000_items_usd"] = 1000 * cost / row["items"] if row.get("items") else ""
    return row


# --- local ------------------------------------------------------------------------------------------


class LocalEnvironment(Environment):
    """An execution environment for the sweep: the model's worker in its sandbox (or unconfined)."""

    def __init__(self, cfg: SweepConfig, memory_mb: int, log_dir: Path, slot: int = 0) -> None:
        limits = "cgroup" if cfg.enforce_limits else "none"
        super().__init__(cfg.model, str(cfg.model_dir), memory_mb, log_dir, "x86_64", limits, slot)
        self.timeout_s = cfg.timeout_s

    def invoke_items(self, items: list[dict[str, Any]], index: int) -> dict[str, Any]:
        return self.invoke({"items": items, "batch": index}, self.timeout_s)


def _failure_reason(exc: Exception) -> str:
    kind = getattr(exc, "error_type", "")
    return {"Runtime.OutOfMemory": "oom", "Sandbox.Timedout": "timeout"}.get(kind, "error")


def local_invocations(cfg: SweepConfig, items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Rows for every local configuration (priced per architecture afterwards)."""
    log_dir = cfg.output / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    for memory in cfg.memory_mb:
        for batch_size in cfg.batch_sizes:
            for concurrency in cfg.concurrency:
                base = {"target": "local", "model": cfg.model, "memory_mb": memory, "batch_size": batch_size,
                        "concurrency": concurrency, "measured_architecture": "x86_64"}  # fmt: skip
                yield from _local_config(cfg, items, base, log_dir)


def _local_config(cfg: SweepConfig, items: list, base: dict[str, Any], log_dir: Path) -> Iterator[dict[str, Any]]:
    memory, batch_size, concurrency = base["memory_mb"], base["batch_size"], base["concurrency"]
    enforced = Sandbox.probe(memory) if cfg.enforce_limits else (False, False)
    n = 0

    def row(kind: str, inv: dict[str, Any] | None, env: LocalEnvironment | None, status="ok", reason=""):
        nonlocal n
        n += 1
        cpu_on, mem_on = (env.sandbox.cpu_enforced, env.sandbox.memory_enforced) if env else enforced
        out = {**base, "kind": kind, "invocation": n, "status": status, "reason": reason,
               "cpu_share": round(lambda_vcpus(memory), 4), "cpu_enforced": cpu_on,
               "memory_enforced": mem_on}  # fmt: skip
        if inv:
            resp = inv.get("response") or {}
            if inv.get("error"):
                out.update(status="error", reason=inv["error"]["errorMessage"][:200])
            duration = inv["duration_ms"]
            init = inv.get("init_ms")
            out.update(
                init_ms=round(init, 2) if init else "",
                duration_ms=round(duration, 2),
                billed_ms=int(-(-(duration + (init or 0)) // 1)),
                max_memory_mb=round(inv["max_rss_mb"]),
                items=resp.get("items", batch_size),
                item_errors=resp.get("failed", 0),
                request_id=inv["request_id"],
            )
        return out

    for i in range(cfg.cold):  # each cold start is a new environment
        env = None
        try:
            env = LocalEnvironment(cfg, memory, log_dir)
            yield row("cold", env.invoke_items(batch_of(items, batch_size, i * batch_size), i), env)
        except Exception as exc:
            yield row("cold", None, env, status="skipped", reason=f"{_failure_reason(exc)}: {exc}"[:200])
            return  # a configuration that cannot load or answer is skipped, not retried
        finally:
            if env:
                env.close()
    envs: list[LocalEnvironment] = []
    try:
        envs = [LocalEnvironment(cfg, memory, log_dir, slot) for slot in range(concurrency)]
        for env in envs:  # each environment's first request is its cold one; not counted as warm
            env.invoke_items(batch_of(items, batch_size, 0), -1)
        per_env = -(-cfg.warm // concurrency)
        with ThreadPoolExecutor(concurrency) as pool:
            futures = [
                pool.submit(lambda e, k: [e.invoke_items(batch_of(items, batch_size, (k * per_env + j) * batch_size), j)
                                          for j in range(per_env)], env, k)
                for k, env in enumerate(envs)
            ]  # fmt: skip
            for env, fut in zip(envs, futures, strict=True):
                for inv in fut.result()[: cfg.warm]:
                    yield row("warm", inv, env)
    except Exception as exc:
        yield row("warm", None, None, status="skipped", reason=f"{_failure_reason(exc)}: {exc}"[:200])
    finally:
        for env in envs:
            env.close()


# --- AWS --------------------------------------------------------------------------------------------


def _invoke_with_report(lam: Any, function: str, payload: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Invoke synchronously with ``LogType=Tail``; return the response body and the parsed REPORT."""
    resp = lam.invoke(FunctionName=function, Payload=json.dumps(payload).encode(), LogType="Tail")
    body = json.loads(resp["Payload"].read() or b"{}")
    tail = base64.b64decode(resp.get("LogResult", "")).decode("utf-8", errors="replace")
    invs = [i for i in parse_lines(tail.splitlines()) if i.has_report]
    if resp.get("FunctionError"):
        body = {"error": body}
    return body, (invs[-1] if invs else None)


def aws_invocations(cfg: SweepConfig, function: str, items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Rows for every configuration of a deployed function; its configuration is restored at the end."""
    import boto3

    lam = boto3.client("lambda", region_name=cfg.region)
    original = lam.get_function_configuration(FunctionName=function)
    arch = (original.get("Architectures") or ["x86_64"])[0]
    env_vars = dict(original.get("Environment", {}).get("Variables", {}))

    def reconfigure(memory: int) -> None:
        # A changed configuration makes Lambda start fresh execution environments: the next invoke is cold.
        variables = {**env_vars, "MLINFER_BENCH_NONCE": uuid.uuid4().hex}
        lam.update_function_configuration(
            FunctionName=function, MemorySize=memory, Environment={"Variables": variables}
        )
        lam.get_waiter("function_updated_v2").wait(FunctionName=function)

    try:
        for memory in cfg.memory_mb:
            for batch_size in cfg.batch_sizes:
                for concurrency in cfg.concurrency:
                    base = {"target": "aws", "model": cfg.model, "memory_mb": memory, "batch_size": batch_size,
                            "concurrency": concurrency, "measured_architecture": arch, "cpu_enforced": True,
                            "memory_enforced": True}  # fmt: skip
                    yield from _aws_config(lam, function, cfg, items, base, reconfigure)
    finally:
        lam.update_function_configuration(
            FunctionName=function, MemorySize=original["MemorySize"], Environment={"Variables": env_vars}
        )


def _aws_config(lam, function, cfg, items, base, reconfigure) -> Iterator[dict[str, Any]]:
    n = 0

    def row(kind: str, body: dict[str, Any], report: Any) -> dict[str, Any]:
        nonlocal n
        n += 1
        out = {**base, "kind": kind, "invocation": n, "status": "ok", "reason": "",
               "cpu_share": round(lambda_vcpus(base["memory_mb"]), 4)}  # fmt: skip
        if "error" in body:
            out.update(status="error", reason=json.dumps(body["error"])[:200])
        if report is not None:
            out.update(init_ms=report.init_ms or "", duration_ms=report.duration_ms, billed_ms=report.billed_ms,
                       max_memory_mb=report.max_memory_mb, request_id=report.request_id)  # fmt: skip
            if report.status != "success":
                out.update(status=report.status, reason=report.error_type or report.status)
        out.update(items=body.get("items", base["batch_size"]), item_errors=body.get("failed", 0))
        return out

    batch_size, concurrency = base["batch_size"], base["concurrency"]
    for i in range(cfg.cold):
        reconfigure(base["memory_mb"])
        body, report = _invoke_with_report(lam, function, {"items": batch_of(items, batch_size, i * batch_size)})
        r = row("cold", body, report)
        yield r
        if r["status"] != "ok":
            yield {**r, "kind": "warm", "status": "skipped", "reason": f"cold invocation failed: {r['reason']}"}
            return
    with ThreadPoolExecutor(concurrency) as pool:
        payloads = [{"items": batch_of(items, batch_size, j * batch_size)} for j in range(cfg.warm)]
        for body, report in pool.map(lambda p: _invoke_with_report(lam, function, p), payloads):
            yield row("warm", body, report)


# --- both -------------------------------------------------------------------------------------------


def run_sweep(cfg: SweepConfig, function: str | None = None) -> Path:
    """Run the sweep (on AWS when ``function`` is given) and write ``<output>/invocations.csv``."""
    from tqdm import tqdm

    from mlinfer.models.registry import artifact_path, get_spec, model_dir

    get_spec(cfg.model)
    items = load_items(cfg.input)
    cfg.output.mkdir(parents=True, exist_ok=True)
    if function is None:
        cfg.model_dir = cfg.model_dir or model_dir()
        if not artifact_path(cfg.model, cfg.model_dir).is_dir():
            raise FileNotFoundError(f"no trained model at {artifact_path(cfg.model, cfg.model_dir)}")
        rows = local_invocations(cfg, items)
    else:
        rows = aws_invocations(cfg, function, items)
    total = len(cfg.memory_mb) * len(cfg.batch_sizes) * len(cfg.concurrency) * (cfg.cold + cfg.warm)
    path = cfg.output / "invocations.csv"
    started = time.time()
    with path.open("w", newline="") as fh, tqdm(total=total, unit="inv", disable=not cfg.progress) as bar:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            for arch in cfg.architectures if function is None else [row["measured_architecture"]]:
                writer.writerow(_price_row({**row, "architecture": arch}, cfg.region))
            bar.update(1)
    meta = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in cfg.__dict__.items()},
            "function": function, "started": started, "seconds": round(time.time() - started, 1),
            "host_cpus": os.cpu_count(), "machine": describe(), "host_architecture": platform.machine()}  # fmt: skip
    (cfg.output / "sweep.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path
