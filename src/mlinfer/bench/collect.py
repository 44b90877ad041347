"""Collect invocations from where the logs are: CloudWatch Logs, a Step Functions run, local files.

invs = from_cloudwatch(["/aws/lambda/mlinfer-logreg"], start=t0, end=t1)
cost = cost_from_invocations(invs, architecture="arm64")
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlinfer.bench.logs import Invocation, parse_lines, parse_paths


def from_cloudwatch(
    log_groups: Iterable[str], start: float, end: float, region: str | None = None, client: Any = None
) -> list[Invocation]:
    """Invocations in the log groups between ``start`` and ``end`` (epoch seconds), one stream at a time.

    Uses ``FilterLogEvents`` with pagination; each stream is parsed on its own so that EMF documents join
    the right request.
    """
    import boto3

    logs = client or boto3.client("logs", region_name=region)
    out: list[Invocation] = []
    for group in log_groups:
        streams: dict[str, list[str]] = {}
        kwargs = {"logGroupName": group, "startTime": int(start * 1000), "endTime": int(end * 1000)}
        for page in logs.get_paginator("filter_log_events").paginate(**kwargs):
            for event in page.get("events", []):
                streams.setdefault(event["logStreamName"], []).append(event["message"])
        for lines in streams.values():
            out.extend(parse_lines(line for msg in lines for line in msg.splitlines()))
    return out


def from_stack_run(stack: str, summary: dict[str, Any], region: str | None = None) -> list[Invocation]:
    """Invocations of a workflow run's model function, from its log group over the run's time span."""
    import time

    model = summary["model"]
    end = time.time()
    return from_cloudwatch([f"/aws/lambda/{stack}-{model}"], end - summary["wall_time_s"] - 60, end + 60, region)


def from_local_run(run_dir: Path) -> list[Invocation]:
    """Invocations of a local run (``mlinfer run --output DIR`` or ``mlinfer bench``): ``DIR/logs/*.log``."""
    return parse_paths(sorted((run_dir / "logs").glob("*.log")))
