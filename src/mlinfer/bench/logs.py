"""One parser for every log source: Lambda REPORT lines (text and JSON log formats) and EMF metrics.

Sources: CloudWatch Logs events, the ``LogResult`` tail of a synchronous invoke, ``sam local invoke``
output, and the local runner's ``logs/`` files. Records are joined by request id into
:class:`Invocation` objects, from which :mod:`mlinfer.cost` prices each batch.

    invocations = parse_lines(open("out/run/logs/worker-123.log"))
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_REPORT = re.compile(r"REPORT RequestId:\s*(?P<rid>[0-9a-zA-Z-]+)(?P<rest>.*)")
_FIELD = re.compile(r"(?P<name>[A-Za-z][A-Za-z ]*?):\s*(?P<value>[-\w.]+)(?:\s*(?P<unit>ms|MB))?")
_FIELDS = {
    "Duration": "duration_ms",
    "Billed Duration": "billed_ms",
    "Memory Size": "memory_mb",
    "Max Memory Used": "max_memory_mb",
    "Init Duration": "init_ms",
    "Restore Duration": "restore_ms",
    "Status": "status",
    "Error Type": "error_type",
}


@dataclass
class Invocation:
    """What one request cost and did: the platform's REPORT plus the function's EMF metrics."""

    request_id: str
    duration_ms: float | None = None
    billed_ms: int | None = None
    memory_mb: int | None = None
    max_memory_mb: int | None = None
    init_ms: float | None = None
    status: str = "success"
    error_type: str | None = None
    metrics: dict[str, list[float]] = field(default_factory=dict)
    dimensions: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def cold(self) -> bool:
        return self.init_ms is not None

    @property
    def has_report(self) -> bool:
        return self.billed_ms is not None

    def metric(self, name: str) -> float:
        return float(sum(self.metrics.get(name, [])))

    @property
    def items(self) -> int:
        return int(self.metric("BatchSize"))

    @property
    def item_errors(self) -> int:
        return int(self.metric("ItemErrors"))


def parse_report_text(line: str) -> dict[str, Any] | None:
    """Fields of a text-format REPORT line, or None."""
    match = _REPORT.search(line)
    if not match:
        return None
    out: dict[str, Any] = {"request_id": match["rid"]}
    for part in match["rest"].split("\t"):
        fm = _FIELD.match(part.strip())
        if not fm or fm["name"] not in _FIELDS:
            continue
        key, value = _FIELDS[fm["name"]], fm["value"]
        if key in ("status", "error_type"):
            out[key] = value
        elif key in ("billed_ms", "memory_mb", "max_memory_mb"):
            out[key] = int(float(value))
        else:
            out[key] = float(value)
    return out


def parse_report_json(record: dict[str, Any]) -> dict[str, Any] | None:
    """Fields of a JSON-format ``platform.report`` event, or None."""
    if record.get("type") != "platform.report":
        return None
    body = record.get("record", {})
    m = body.get("metrics", {})
    out: dict[str, Any] = {
        "request_id": body.get("requestId"),
        "duration_ms": m.get("durationMs"),
        "billed_ms": m.get("billedDurationMs"),
        "memory_mb": m.get("memorySizeMB"),
        "max_memory_mb": m.get("maxMemoryUsedMB"),
        "status": body.get("status", "success"),
    }
    if "initDurationMs" in m:
        out["init_ms"] = m["initDurationMs"]
    if body.get("errorType"):
        out["error_type"] = body["errorType"]
    return out


def _emf(obj: Any) -> dict[str, Any] | None:
    """The EMF document in a log record: top level, or wrapped in ``message`` (JSON log format)."""
    if isinstance(obj, dict) and "_aws" in obj:
        return obj
    if isinstance(obj, dict) and "message" in obj:
        inner = obj["message"]
        if isinstance(inner, str) and inner.startswith("{"):
            try:
                inner = json.loads(inner)
            except ValueError:
                return None
        return inner if isinstance(inner, dict) and "_aws" in inner else None
    return None


def _apply_emf(inv: Invocation, doc: dict[str, Any]) -> None:
    directives = doc["_aws"].get("CloudWatchMetrics", [])
    names = {m["Name"] for d in directives for m in d.get("Metrics", [])}
    dims = {name for d in directives for group in d.get("Dimensions", []) for name in group}
    for name in names:
        values = doc.get(name)
        values = values if isinstance(values, list) else [values]
        inv.metrics.setdefault(name, []).extend(float(v) for v in values if v is not None)
    inv.dimensions.update({k: str(doc[k]) for k in dims if k in doc})
    inv.metadata.update({k: v for k, v in doc.items() if k not in names and k not in dims and k != "_aws"})


def parse_lines(lines: Iterable[str]) -> list[Invocation]:
    """Invocations found in log lines, in order of first appearance, REPORT and EMF joined by request id.

    EMF documents carry the request id in their metadata (``request_id``); a document without one is
    joined to the most recent ``START``/``REPORT`` request seen in the same stream.
    """
    by_id: dict[str, Invocation] = {}
    current: str | None = None
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line.startswith("START RequestId:"):
            current = line.split()[2]
            by_id.setdefault(current, Invocation(current))
            continue
        report = parse_report_text(line) if "REPORT RequestId:" in line else None
        obj: Any = None
        if report is None and line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                report = parse_report_json(obj)
                if obj.get("type") == "platform.start":
                    current = obj.get("record", {}).get("requestId")
                    if current:
                        by_id.setdefault(current, Invocation(current))
        if report is not None and report.get("request_id"):
            inv = by_id.setdefault(report["request_id"], Invocation(report["request_id"]))
            for key, value in report.items():
                if key != "request_id" and value is not None:
                    setattr(inv, key, value)
            continue
        doc = _emf(obj)
        if doc is not None:
            rid = doc.get("request_id") or current
            if rid:
                _apply_emf(by_id.setdefault(rid, Invocation(rid)), doc)
    return list(by_id.values())


def parse_paths(paths: Iterable[Path]) -> list[Invocation]:
    """Invocations from log files (e.g. a local run's ``logs/*.log``)."""
    out: list[Invocation] = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as fh:
            out.extend(parse_lines(fh))
    return out
