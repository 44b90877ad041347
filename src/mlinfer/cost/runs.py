"""Costs of what actually happened, from REPORT lines (billed duration, memory) and EMF item counts.

The two equations of the serverless batch-inference literature:

* parallel:   C = sum_i(billed_i x memory x price) + requests + orchestration
* monolithic: C = billed x memory x price + one request (+ its few transitions)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlinfer.cost.pricing import DEFAULT_REGION, lambda_cost

if TYPE_CHECKING:
    from mlinfer.bench.logs import Invocation


def parallel_cost(
    billed_ms: Iterable[int],
    memory_mb: int,
    architecture: str = "x86_64",
    orchestration_usd: float = 0.0,
    region: str = DEFAULT_REGION,
) -> float:
    """Equation 1: every function's billed time at the configured memory, plus orchestration."""
    return lambda_cost(list(billed_ms), memory_mb, architecture, region).total + orchestration_usd


def monolithic_cost(
    billed_ms: int,
    memory_mb: int,
    architecture: str = "x86_64",
    orchestration_usd: float = 0.0,
    region: str = DEFAULT_REGION,
) -> float:
    """Equation 2: one function's billed time at the memory it ran with."""
    return lambda_cost([billed_ms], memory_mb, architecture, region).total + orchestration_usd


@dataclass
class RunCost:
    """Cost of a set of invocations: per batch (invocation), per item, per 1,000 items, per run."""

    invocations: int
    cold_starts: int
    items: int
    item_errors: int
    billed_ms: int
    gb_seconds: float
    lambda_usd: float
    orchestration_usd: float
    total_usd: float
    per_item_usd: float
    per_1000_items_usd: float
    per_batch_usd: list[float] = field(default_factory=list)
    missing_reports: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cost_from_invocations(
    invocations: Iterable[Invocation],
    architecture: str = "x86_64",
    orchestration_usd: float = 0.0,
    region: str = DEFAULT_REGION,
) -> RunCost:
    """Price each invocation from its REPORT line (billed duration includes INIT where Lambda bills it).

    Item counts come from the functions' EMF ``BatchSize`` metric. Invocations without a REPORT line
    (e.g. logs cut short) are counted in ``missing_reports`` and not priced.
    """
    invs = list(invocations)
    reported = [i for i in invs if i.has_report]
    per_batch = [lambda_cost([i.billed_ms], i.memory_mb or 128, architecture, region).total for i in reported]
    total_billed = sum(i.billed_ms or 0 for i in reported)
    gbs = sum((i.billed_ms or 0) / 1000 * (i.memory_mb or 0) / 1024 for i in reported)
    lam = sum(per_batch)
    items = sum(i.items for i in invs)
    total = lam + orchestration_usd
    return RunCost(
        invocations=len(reported),
        cold_starts=sum(1 for i in reported if i.cold),
        items=items,
        item_errors=sum(i.item_errors for i in invs),
        billed_ms=total_billed,
        gb_seconds=gbs,
        lambda_usd=lam,
        orchestration_usd=orchestration_usd,
        total_usd=total,
        per_item_usd=total / items if items else 0.0,
        per_1000_items_usd=1000 * total / items if items else 0.0,
        per_batch_usd=per_batch,
        missing_reports=len(invs) - len(reported),
    )
