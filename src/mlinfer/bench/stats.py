"""Summary statistics per configuration: median, p90, p99, with bootstrap confidence intervals."""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

KEY = ("model", "memory_mb", "architecture", "batch_size", "concurrency")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of an ``invocations.csv``, numbers converted."""
    ints = {
        "memory_mb",
        "batch_size",
        "concurrency",
        "invocation",
        "billed_ms",
        "items",
        "item_errors",
        "max_memory_mb",
    }
    floats = {"init_ms", "duration_ms", "cost_usd", "cost_per_1000_items_usd", "cpu_share"}
    rows = []
    with open(path, newline="") as fh:
        for raw in csv.DictReader(fh):
            row: dict[str, Any] = dict(raw)
            for k in ints | floats:
                if row.get(k) not in (None, ""):
                    row[k] = int(float(row[k])) if k in ints else float(row[k])
                else:
                    row[k] = None
            rows.append(row)
    return rows


def bootstrap_ci(
    values: list[float], q: float = 50, n: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the q-th percentile."""
    if len(values) < 2:
        v = float(values[0]) if values else float("nan")
        return v, v
    rng = np.random.default_rng(seed)
    arr = np.asarray(values, dtype=float)
    stats = np.percentile(rng.choice(arr, size=(n, arr.size), replace=True), q, axis=1)
    return float(np.percentile(stats, 100 * alpha / 2)), float(np.percentile(stats, 100 * (1 - alpha / 2)))


@dataclass
class ConfigStats:
    """One configuration's warm and cold behaviour."""

    model: str
    memory_mb: int
    architecture: str
    batch_size: int
    concurrency: int
    warm_n: int
    cold_n: int
    warm_median_ms: float
    warm_median_ci: tuple[float, float]
    warm_p90_ms: float
    warm_p99_ms: float
    warm_cost_usd: float
    cost_per_1000_items_usd: float
    cost_per_1000_ci: tuple[float, float]
    cold_init_ms: float
    cold_duration_ms: float
    cold_cost_usd: float
    max_memory_mb: int
    status: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(rows: list[dict[str, Any]]) -> list[ConfigStats]:
    """Group rows by configuration; configurations without a successful warm run are marked skipped."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in KEY)].append(row)
    out = []
    for key, group in groups.items():
        ok = [r for r in group if r["status"] == "ok" and r["duration_ms"] is not None]
        warm = [r for r in ok if r["kind"] == "warm"]
        cold = [r for r in ok if r["kind"] == "cold"]
        failed = [r for r in group if r["status"] != "ok"]
        durations = [r["duration_ms"] for r in warm]
        per_1000 = [r["cost_per_1000_items_usd"] for r in warm if r["cost_per_1000_items_usd"] is not None]
        nan = float("nan")
        out.append(
            ConfigStats(
                **dict(zip(KEY, key, strict=True)),
                warm_n=len(warm),
                cold_n=len(cold),
                warm_median_ms=float(np.median(durations)) if durations else nan,
                warm_median_ci=bootstrap_ci(durations) if durations else (nan, nan),
                warm_p90_ms=float(np.percentile(durations, 90)) if durations else nan,
                warm_p99_ms=float(np.percentile(durations, 99)) if durations else nan,
                warm_cost_usd=float(np.median([r["cost_usd"] for r in warm])) if warm else nan,
                cost_per_1000_items_usd=float(np.median(per_1000)) if per_1000 else nan,
                cost_per_1000_ci=bootstrap_ci(per_1000) if per_1000 else (nan, nan),
                cold_init_ms=float(np.median([r["init_ms"] or 0 for r in cold])) if cold else nan,
                cold_duration_ms=float(np.median([r["duration_ms"] for r in cold])) if cold else nan,
                cold_cost_usd=float(np.median([r["cost_usd"] for r in cold])) if cold else nan,
                max_memory_mb=max((r["max_memory_mb"] or 0 for r in ok), default=0),
                status="ok" if warm else "skipped",
                reason="" if warm else "; ".join(sorted({r["reason"] for r in failed if r["reason"]}))[:300],
            )
        )
    return sorted(out, key=lambda s: (s.model, s.architecture, s.batch_size, s.concurrency, s.memory_mb))
