"""Project a whole job from per-configuration statistics and pick a configuration.

For a job of ``items`` items at batch size b there are n = ceil(items / b) batches.

* parallel, concurrency c: min(c, n) cold environments; time = cold start + (ceil(n / c) - 1) warm
  batches; Lambda = cold invocations + warm ones; Step Functions = one transition per child plus
  Express children (:mod:`mlinfer.cost.stepfunctions`); orchestration also counts the run's S3
  requests and, from a local sweep's logs, CloudWatch Logs ingestion (:mod:`mlinfer.cost.storage`).
* monolithic: one environment; time = cold start + (n - 1) warm batches, split into 15-minute
  invocations; Lambda = that billed time; a few transitions per invocation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlinfer.bench.stats import ConfigStats
from mlinfer.cost.pricing import billed_ms, lambda_cost
from mlinfer.cost.stepfunctions import monolithic_transitions, parallel_transitions, stepfunctions_cost
from mlinfer.cost.storage import logs_cost, run_s3_requests

LAMBDA_MAX_MS = 900_000
#: Lambda's default account concurrency: the widest fan-out projected without a quota increase.
FAN_OUT_LIMIT = 1000


@dataclass
class Option:
    """One way to run the job, with its projected time and cost."""

    mode: str
    memory_mb: int
    architecture: str
    batch_size: int
    concurrency: int
    batches: int
    time_s: float
    lambda_usd: float
    orchestration_usd: float
    cost_usd: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        conc = f" x{self.concurrency}" if self.mode == "parallel" else ""
        return f"{self.mode} {self.memory_mb} MB {self.architecture} batch {self.batch_size}{conc}"


def _parallel(stats: ConfigStats, n: int, concurrency: int, region: str, log_bytes: float = 0.0) -> Option:
    warm, cold = stats.warm_median_ms, stats.cold_init_ms + stats.cold_duration_ms
    envs = min(concurrency, n)
    rounds = math.ceil(n / concurrency)
    billed = [billed_ms(cold)] * envs + [billed_ms(warm)] * (n - envs)
    lam = lambda_cost(billed, stats.memory_mb, stats.architecture, region=region).total
    sfn = stepfunctions_cost(parallel_transitions(n), [warm] * n, region=region).total
    sfn += run_s3_requests("parallel", n, region=region).usd + logs_cost(round(n * log_bytes), region)["usd"]
    time_s = (cold + (rounds - 1) * warm) / 1000
    return Option(
        "parallel", stats.memory_mb, stats.architecture, stats.batch_size, concurrency, n, time_s, lam, sfn, lam + sfn
    )


def project(
    stats: ConfigStats, items: int, region: str = "us-east-1", fan_out: bool = True, log_bytes: float = 0.0
) -> list[Option]:
    """Parallel and monolithic projections of a job of ``items`` items under one configuration.

    ``log_bytes``: CloudWatch Logs bytes per batch (measured by a local sweep), priced as ingestion.
    With ``fan_out``, a configuration measured one environment at a time is also projected at one
    function per batch (up to :data:`FAN_OUT_LIMIT`): Lambda environments do not share CPUs, so the
    per-batch duration measured alone carries over.
    """
    if stats.status != "ok" or math.isnan(stats.cold_init_ms):
        return []
    n = math.ceil(items / stats.batch_size)
    warm, cold = stats.warm_median_ms, stats.cold_init_ms + stats.cold_duration_ms
    price = (stats.memory_mb, stats.architecture)
    options = [_parallel(stats, n, stats.concurrency, region, log_bytes)]
    if fan_out and stats.concurrency == 1 and n > 1:
        options.append(_parallel(stats, n, min(n, FAN_OUT_LIMIT), region, log_bytes))
    mono_ms = cold + (n - 1) * warm
    invocations = max(1, math.ceil(mono_ms / LAMBDA_MAX_MS))
    mono_lambda = lambda_cost([billed_ms(mono_ms / invocations)] * invocations, *price, region=region).total
    mono_sfn = stepfunctions_cost(monolithic_transitions(invocations), region=region).total
    mono_sfn += run_s3_requests("monolithic", n, invocations=invocations, region=region).usd
    mono_sfn += logs_cost(round(n * log_bytes), region)["usd"]
    mono = Option("monolithic", stats.memory_mb, stats.architecture, stats.batch_size, 1, n, mono_ms / 1000,
                  mono_lambda, mono_sfn, mono_lambda + mono_sfn)  # fmt: skip
    return options if stats.concurrency > 1 else [*options, mono]


def all_options(
    stats: list[ConfigStats], items: int, region: str = "us-east-1", log_bytes: float = 0.0
) -> list[Option]:
    """Every projection; monolithic once per (memory, architecture, batch size)."""
    seen, out = set(), []
    for s in stats:
        for opt in project(s, items, region, log_bytes=log_bytes):
            key = (opt.mode, opt.memory_mb, opt.architecture, opt.batch_size, opt.concurrency)
            if key not in seen:
                seen.add(key)
                out.append(opt)
    return out


def pareto_front(options: list[Option]) -> list[Option]:
    """Options no other option beats on both time and cost, fastest first."""
    front = []
    for o in sorted(options, key=lambda o: (o.time_s, o.cost_usd)):
        if not front or o.cost_usd < front[-1].cost_usd:
            front.append(o)
    return front


def recommend(
    options: list[Option],
    strategy: str = "balanced",
    deadline_s: float | None = None,
    budget_usd: float | None = None,
    weight: float = 0.5,
) -> Option | None:
    """Cheapest within a deadline, fastest within a budget, or by strategy (cost, speed, balanced)."""
    pool = [o for o in options if (deadline_s is None or o.time_s <= deadline_s)]
    pool = [o for o in pool if (budget_usd is None or o.cost_usd <= budget_usd)]
    if not pool:
        return None
    if deadline_s is not None and budget_usd is None:
        return min(pool, key=lambda o: (o.cost_usd, o.time_s))
    if budget_usd is not None and deadline_s is None:
        return min(pool, key=lambda o: (o.time_s, o.cost_usd))
    if strategy == "cost":
        return min(pool, key=lambda o: (o.cost_usd, o.time_s))
    if strategy == "speed":
        return min(pool, key=lambda o: (o.time_s, o.cost_usd))
    if strategy != "balanced":
        raise ValueError("strategy must be cost, speed or balanced")
    # As Lambda Power Tuning scores it: each as a fraction of the largest, weighted (0 = fastest, 1 = cheapest).
    # (Min-max scaling made any two options tie, whatever their ratio.)
    t_max = max(o.time_s for o in pool) or 1.0
    c_max = max(o.cost_usd for o in pool) or 1.0
    return min(pool, key=lambda o: (weight * o.cost_usd / c_max + (1 - weight) * o.time_s / t_max, o.cost_usd))


def log_bytes_per_batch(sweep_dir: Path, rows: list[dict[str, Any]]) -> float:
    """Average bytes a measured invocation (one batch) wrote to its log in a local sweep (0 for an AWS one:
    its logs are in CloudWatch). arm64 rows are priced copies of x86_64 ones and are not counted."""
    logs = list((sweep_dir / "logs").glob("*.log"))
    measured = [r for r in rows if r.get("architecture") == r.get("measured_architecture", r.get("architecture"))]
    if not logs or not measured or any(r.get("target") == "aws" for r in rows):
        return 0.0
    return sum(p.stat().st_size for p in logs) / len(measured)
