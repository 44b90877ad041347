"""Lambda pricing and projected cost: the one place where money is computed.

prices = load_prices("us-east-1")
cost = project_lambda_cost([812.4, 790.1], memory_mb=1769, architecture="arm64", init_ms=[1450.0])
cost.total  # USD
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

PRICES_PATH = Path(__file__).with_name("prices.json")
DEFAULT_REGION = "us-east-1"
ARCHITECTURES = ("x86_64", "arm64")


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@cache
def _raw_prices() -> dict[str, Any]:
    return json.loads(PRICES_PATH.read_text())


@dataclass(frozen=True)
class PriceTable:
    """Prices of one region, as in ``prices.json``."""

    region: str
    table: dict[str, Any]
    as_of: str
    source: dict[str, str]

    @property
    def lambda_request(self) -> float:
        return float(self.table["lambda"]["request"])

    def gb_second_tiers(self, architecture: str) -> list[tuple[float | None, float]]:
        """``[(tier size in GB-s or None for the rest, price per GB-s), ...]`` for one architecture."""
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        return [(size, price) for size, price in self.table["lambda"]["gb_second"][architecture]]

    def gb_second(self, architecture: str) -> float:
        """First-tier price per GB-second (what a single batch job pays unless told otherwise)."""
        return self.gb_second_tiers(architecture)[0][1]

    def summary(self, architecture: str) -> dict[str, Any]:
        """The rates a projection used, for reports."""
        return {
            "region": self.region,
            "architecture": architecture,
            "gb_second": self.gb_second(architecture),
            "request": self.lambda_request,
            "as_of": self.as_of,
            "source": self.source["lambda"],
        }


def load_prices(region: str = DEFAULT_REGION) -> PriceTable:
    """The price table of ``region`` (``ValueError`` lists the known regions)."""
    raw = _raw_prices()
    regions = raw["regions"]
    if region not in regions:
        raise ValueError(f"no prices for region {region!r}; known: {', '.join(sorted(regions))}")
    entry = regions[region]
    if "copy_of" in entry:
        entry = _merge(regions[entry["copy_of"]], entry.get("override", {}))
    return PriceTable(region=region, table=entry, as_of=raw["as_of"], source=raw["source"])


def billed_ms(duration_ms: float) -> int:
    """Lambda rounds each invocation's duration up to the next millisecond."""
    return max(1, math.ceil(duration_ms - 1e-9))


def gb_seconds(billed: float, memory_mb: int) -> float:
    """GB-seconds of ``billed`` milliseconds at ``memory_mb`` (Lambda counts 1 GB = 1,024 MB)."""
    return billed / 1000.0 * memory_mb / 1024.0


def tiered_cost(quantity: float, tiers: list[tuple[float | None, float]], already_used: float = 0.0) -> float:
    """Cost of ``quantity`` units under volume tiers, after ``already_used`` units this month."""
    cost, start = 0.0, already_used
    end = already_used + quantity
    lower = 0.0
    for size, price in tiers:
        upper = math.inf if size is None else lower + size
        overlap = max(0.0, min(end, upper) - max(start, lower))
        cost += overlap * price
        lower = upper
    return cost


@dataclass
class LambdaCost:
    """A Lambda bill: compute (GB-s) plus requests."""

    invocations: int
    billed_ms: int
    memory_mb: int
    architecture: str
    gb_seconds: float
    compute: float
    requests: float
    total: float
    prices: dict[str, Any] = field(default_factory=dict)

    def per_item(self, items: int) -> float:
        return self.total / items if items else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lambda_cost(
    billed_durations_ms: Iterable[int],
    memory_mb: int,
    architecture: str = "x86_64",
    region: str = DEFAULT_REGION,
    invocations: int | None = None,
    already_used_gb_s: float = 0.0,
    free_tier: bool = False,
    ephemeral_mb: int = 512,
) -> LambdaCost:
    """Cost of invocations whose billed durations are known (e.g. from REPORT lines).

    ``invocations`` defaults to the number of durations; pass it when durations include INIT time
    billed separately from a request. ``free_tier`` deducts the monthly free GB-seconds and requests
    (as if this were the month's only use); ``ephemeral_mb`` above the free 512 MB is billed per GB-s.
    """
    prices = load_prices(region)
    durations = list(billed_durations_ms)
    total_billed = int(sum(durations))
    gbs = gb_seconds(total_billed, memory_mb)
    free = prices.table["lambda"]["free_tier"] if free_tier else {"gb_seconds": 0, "requests": 0}
    billable_gbs = max(0.0, gbs - free["gb_seconds"])
    compute = tiered_cost(billable_gbs, prices.gb_second_tiers(architecture), already_used_gb_s)
    compute += gb_seconds(total_billed, max(0, ephemeral_mb - 512)) * prices.table["lambda"]["ephemeral_gb_second"]
    n = len(durations) if invocations is None else invocations
    requests = max(0, n - free["requests"]) * prices.lambda_request
    return LambdaCost(
        invocations=n,
        billed_ms=total_billed,
        memory_mb=memory_mb,
        architecture=architecture,
        gb_seconds=gbs,
        compute=compute,
        requests=requests,
        total=compute + requests,
        prices=prices.summary(architecture),
    )


def project_lambda_cost(
    durations_ms: Iterable[float],
    memory_mb: int,
    architecture: str = "x86_64",
    init_ms: Iterable[float] = (),
    region: str = DEFAULT_REGION,
) -> LambdaCost:
    """Projected cost of invocations of measured ``durations_ms`` plus the INIT phases of cold starts.

    Each duration is billed rounded up to 1 ms; INIT durations are billed too (on-demand, since
    2025-08-01) but add no request charge.
    """
    durations = [billed_ms(d) for d in durations_ms]
    inits = [billed_ms(d) for d in init_ms]
    return lambda_cost(durations + inits, memory_mb, architecture, region, invocations=len(durations))


def s3_request_cost(puts: int, gets: int, region: str = DEFAULT_REGION) -> float:
    """S3 Standard request charges (PUT/COPY/POST/LIST and GET), e.g. activations between stage functions."""
    table = load_prices(region).table["s3"]
    return puts * table["put_request"] + gets * table["get_request"]
