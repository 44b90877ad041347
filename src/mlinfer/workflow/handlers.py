"""Lambda handlers of the batch workflow's own steps: Plan (validate + cut into batches) and Summarize."""

from __future__ import annotations

import json
import os
from typing import Any

from aws_lambda_powertools import Logger

from mlinfer.workflow.plan import make_plan, parse_request
from mlinfer.workflow.summary import summarize_run

logger = Logger()


def model_functions() -> dict[str, str]:
    """``MODEL_FUNCTIONS``: the deployed model -> function name map (set in template.yaml)."""
    return json.loads(os.environ.get("MODEL_FUNCTIONS", "{}"))


@logger.inject_lambda_context(log_event=True)
def plan_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"request": <workflow input>, "executionName": ...}`` -> the run descriptor the workflow carries."""
    request = parse_request(event.get("request", {}))
    functions = model_functions()
    run_id = event.get("executionName") or context.aws_request_id
    run = make_plan(request, run_id, function_name=functions.get(request.model), known_models=set(functions))
    logger.info("planned", extra={"items": run["items"], "batches": run["batches"], "prefix": run["prefix"]})
    return run


@logger.inject_lambda_context(log_event=True)
def summarize_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"run": <descriptor>}`` -> counts, status and where ``summary.json`` is."""
    summary = summarize_run(
        event["run"],
        region=os.environ.get("AWS_REGION", "us-east-1"),
        child_execution=os.environ.get("MAP_CHILD_EXECUTION_TYPE", "EXPRESS"),
    )
    logger.info("summarised", extra={k: summary[k] for k in ("status", "items", "results", "errors")})
    return {
        "status": summary["status"],
        "items": summary["items"],
        "results": summary["results"],
        "errors": summary["errors"],
        "failedBatches": summary["failed_batches"],
        "failedBatchPercentage": summary["failed_batch_percentage"],
        "costUsd": summary["cost"]["total_usd"],
        "summaryUri": summary["files"]["summary"],
        "resultsUri": summary["files"]["results"],
    }
