"""Summarise a run from its files: merge batch results in input order, count, time and price it.

Used by the workflow's Summarize step and by the local runner, so both write the same
``results.jsonl`` (one line per input line) and ``summary.json`` (the same fields).
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from mlinfer.cost.pricing import project_lambda_cost
from mlinfer.cost.stepfunctions import monolithic_transitions, parallel_transitions, stepfunctions_cost
from mlinfer.cost.storage import logs_cost, run_s3_requests
from mlinfer.runtime.items import item_id
from mlinfer.runtime.storage import (
    attempt_uri,
    dump_line,
    exists,
    parse_jsonl_line,
    read_bytes,
    read_jsonl_slice,
    write_bytes,
    write_lines,
)
from mlinfer.workflow.layout import RunLayout
from mlinfer.workflow.retries import retries_for

#: Lambda's message for a timed-out invocation; such a try is billed for the whole timeout.
TIMED_OUT = re.compile(r"Task timed out after ([0-9.]+) seconds")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (inclusive method); 0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def _read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def failed_batch_lines(entry: dict[str, Any], error_type: str, message: str) -> Iterator[dict[str, Any]]:
    """One error line per item of a batch that produced no results (ids read back from the input)."""
    src = entry["source"]
    for line_no, raw in read_jsonl_slice(
        src["uri"], src["offset"], src["limit"], src.get("byteStart"), src.get("byteEnd")
    ):
        try:
            obj = parse_jsonl_line(raw)
            ident = item_id(obj, 0) if isinstance(obj, dict) else None
        except ValueError:
            ident = None
        row: dict[str, Any] = {"id": ident, "error": {"type": error_type, "message": message}}
        if ident is None:
            row["line"] = line_no
        yield row


def batch_lines(layout: RunLayout, entry: dict[str, Any]) -> tuple[list[str] | None, tuple[str, str] | None]:
    """A batch's result lines as written (strict JSON text), or ``None`` and why it has none (type, message)."""
    index, expected = entry["index"], entry["source"]["limit"]
    if exists(layout.batch_results(index)):
        body = read_bytes(layout.batch_results(index)).decode("utf-8")
        lines = body.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) == expected:
            return lines, None
        return None, ("IncompleteBatch", f"batch {index} wrote {len(lines)} of {expected} lines")
    if exists(layout.batch_error(index)):
        return None, ("BatchFailed", _error_message(_read_json(layout.batch_error(index))))
    return None, ("BatchNotRun", f"batch {index} has neither results nor an error record")


def _error_message(record: dict[str, Any]) -> str:
    """A Step Functions error record ``{"Error", "Cause"}`` as one readable line."""
    cause = record.get("Cause", "")
    try:
        parsed = json.loads(cause)
        cause = f"{parsed.get('errorType', '')}: {parsed.get('errorMessage', '')}".strip(": ")
    except (TypeError, ValueError):
        pass
    return f"{record.get('Error', 'BatchFailed')}: {cause}"[:1000]


def failed_tries(layout: RunLayout, entry: dict[str, Any], meta: dict[str, Any] | None) -> tuple[int, list[dict]]:
    """How many retries a batch took, and what its failed tries cost (``durationMs``, ``initMs``).

    A finished batch's metadata says which try succeeded (``attempt``, from ``$$.State.RetryCount``). A
    failed batch used the retries the workflow allows its final error (exact when the error repeated).
    A try that raised left a note (``N.attempt-K.json``); a timed-out one is billed for the timeout named
    in its error; a throttled one never ran and is not billed by Lambda (its retry is still a transition).
    """
    index = entry["index"]
    if meta is not None:
        retries = tries = int(meta.get("attempt", 0))  # tries 0 .. attempt-1 failed
        final: dict[str, Any] = {}
    elif exists(layout.batch_error(index)):
        final = _read_json(layout.batch_error(index))
        retries = retries_for(str(final.get("Error", "")))
        tries = retries + 1
    else:
        return 0, []
    notes = []
    for k in range(tries):
        uri = attempt_uri(layout.batch_results(index), k)
        if exists(uri):
            notes.append(_read_json(uri))
    timed_out = TIMED_OUT.search(str(final.get("Cause", "")))
    if timed_out:
        notes.append({"durationMs": float(timed_out.group(1)) * 1000, "initMs": None, "timedOut": True})
    return retries, notes


def summarize_run(
    run: dict[str, Any],
    *,
    region: str = "us-east-1",
    child_execution: str = "EXPRESS",
    durations_ms: list[float] | None = None,
    init_ms: list[float] | None = None,
    peak_memory_mb: float | None = None,
    wall_time_s: float | None = None,
    memory_mb: int | None = None,
    architecture: str | None = None,
    retries: int | None = None,
    log_bytes: int | None = None,
    write: bool = True,
    label: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Read every batch's results (or its failure record), write ``results.jsonl`` and ``summary.json``.

    ``run`` is the descriptor returned by :func:`mlinfer.workflow.plan.make_plan`. Durations default to
    the handlers' own timings from the batch metadata plus the notes of failed tries (see
    :func:`failed_tries`); callers with REPORT lines pass billed ones, and their own count of ``retries``.
    """
    layout = RunLayout(run["prefix"])
    entries = _read_json(layout.plan)
    metas: list[dict[str, Any]] = []
    failed: list[int] = []
    errors: Counter[str] = Counter()
    items = 0
    results_bytes = 0
    retried = 0
    notes: list[dict[str, Any]] = []  # failed tries that Lambda billed

    def merged() -> Iterator[str]:
        """Every input line's output line, in input order, one batch in memory at a time."""
        nonlocal items, retried, results_bytes
        for entry in entries:
            lines, why = batch_lines(layout, entry)
            meta = None
            if lines is None:
                failed.append(entry["index"])
                error_type, message = why or ("BatchNotRun", "")
                lines = [dump_line(row) for row in failed_batch_lines(entry, error_type, message)]
            elif exists(layout.batch_meta(entry["index"])):
                meta = _read_json(layout.batch_meta(entry["index"]))
                metas.append(meta)
            n, tries = failed_tries(layout, entry, meta)
            retried += n
            notes.extend(tries)
            for line in lines:
                if '"error"' in line:  # cheap filter; result lines are parsed only when they might be errors
                    row = json.loads(line)
                    if "error" in row:
                        errors[row["error"]["type"]] += 1
                items += 1
                results_bytes += len(line.encode("utf-8")) + 1
                yield line

    if write:
        write_lines(layout.results, merged())
    else:
        for _ in merged():
            pass

    n_batches = len(entries)
    failed_pct = 100.0 * len(failed) / n_batches if n_batches else 0.0
    n_errors = sum(errors.values())
    within = failed_pct <= run.get("toleratedFailurePercentage", 0)
    # A run in which no item got a result (a wrong file, a model that cannot load) has failed, tolerance or not.
    status = "SUCCEEDED" if within and (n_errors < items or items == 0) else "FAILED"
    outcome = "failed" if status == "FAILED" else "partial" if n_errors else "complete"
    handler_ms = [m["timingsMs"]["total"] for m in metas]
    per_invocation: dict[str, float] = {}  # a monolithic invocation serves several batches
    for n, meta in enumerate(metas):
        key = meta.get("requestId") or f"batch-{n}"
        per_invocation[key] = per_invocation.get(key, 0.0) + meta["timingsMs"]["total"]
    if durations_ms is not None:
        durations = durations_ms
    else:
        durations = [*per_invocation.values(), *(n["durationMs"] for n in notes)]
    latencies = handler_ms or durations  # per batch, also when one invocation served many (monolithic)
    cold = [m for m in metas if m.get("coldStart")]
    if init_ms is not None:
        inits = init_ms
    else:
        inits = [m["timingsMs"]["import"] + m["timingsMs"]["model_load"] for m in cold]
        inits += [n["initMs"] for n in notes if n.get("initMs") is not None]
    retries = retried if retries is None else retries
    memory = memory_mb or (metas[0]["memoryMb"] if metas else 0) or 1024
    arch = architecture or (metas[0]["architecture"] if metas else "x86_64")
    lam = project_lambda_cost(durations, memory, arch, init_ms=inits, region=region)
    if run["mode"] == "parallel":
        transitions = parallel_transitions(
            n_batches, failed_batches=len(failed), retries=retries, standard_children=child_execution == "STANDARD"
        )
        express = durations if child_execution == "EXPRESS" else None
    else:
        loops = len(durations_ms) if durations_ms is not None else len(per_invocation)
        transitions = monolithic_transitions(max(1, loops - retries), retries=retries)
        express = None
    sfn = stepfunctions_cost(transitions, express, region=region)
    s3 = run_s3_requests(
        run["mode"],
        n_batches,
        failed_batches=len(failed),
        failed_try_notes=sum(1 for n in notes if not n.get("timedOut")),
        invocations=len(per_invocation) or 1,
        results_bytes=results_bytes,
        gzip_input_bytes=0 if run.get("source", run["input"]) != run["input"] else None,
        region=region,
    )
    logs = logs_cost(log_bytes, region)
    total = lam.total + sfn.total + s3.usd + logs["usd"]
    summary = {
        "run_id": run.get("runId"),
        "model": run["model"],
        "mode": run["mode"],
        "status": status,
        "outcome": outcome,
        "input": run["input"],
        "config": {
            "batch_size": run["batchSize"],
            "concurrency": 1 if run["mode"] == "monolithic" else run["maxConcurrency"],
            "memory_mb": memory,
            "architecture": arch,
            "region": region,
            "tolerated_failure_percentage": run.get("toleratedFailurePercentage", 0),
        },
        "items": items,
        "results": items - n_errors,
        "errors": n_errors,
        "error_types": dict(errors),
        "batches": n_batches,
        "failed_batches": len(failed),
        "failed_batch_indexes": failed[:100],
        "failed_batch_percentage": round(failed_pct, 3),
        "retries": retries,
        "wall_time_s": round(wall_time_s if wall_time_s is not None else time.time() - run["startedAt"], 3),
        "batch_latency_ms": {
            "p50": round(percentile(latencies, 50), 2),
            "p95": round(percentile(latencies, 95), 2),
            "max": round(max(latencies, default=0.0), 2),
        },
        "cold_starts": len(inits),
        "init_ms": {"median": round(statistics.median(inits), 2) if inits else 0.0},
        "peak_memory_mb": peak_memory_mb,
        "cost": {
            "label": label
            or ("projection from measured durations" if durations_ms is not None else "from handler timings"),
            "total_usd": total,
            "per_item_usd": total / items if items else 0.0,
            "per_1000_items_usd": 1000 * total / items if items else 0.0,
            "by_service": {"lambda": lam.total, "stepfunctions": sfn.total, "s3": s3.usd, "logs": logs["usd"]},
            "lambda": lam.to_dict(),
            "stepfunctions": {"child_execution": child_execution, **sfn.to_dict()},
            "s3": s3.to_dict(),
            "logs": logs,
        },
        "files": {"results": layout.results, "summary": layout.summary, "plan": layout.plan},
    }
    summary.update(extra or {})
    if write:
        write_bytes(layout.summary, (json.dumps(summary, indent=2) + "\n").encode(), "application/json")
    return summary
