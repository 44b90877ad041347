"""Lambda handlers of the batch workflow's own steps: Plan (validate + cut into batches) and Summarize."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger

from mlinfer.workflow.plan import make_plan, parse_request
from mlinfer.workflow.summary import summarize_run

logger = Logger()


def function_name(model: str) -> str:
    """The function that serves ``model``: the template names every model function ``<stack>-<model>``
    (``FUNCTION_NAME_PREFIX`` is ``<stack>-``), so a new model needs no entry in any map."""
    return os.environ.get("FUNCTION_NAME_PREFIX", "mlinfer-") + model


def function_deployed(name: str) -> bool | None:
    """Whether Lambda knows the function (``None`` where the endpoint cannot say, e.g. ``sam local``)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    quick = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})
    try:
        boto3.client("lambda", config=quick).get_function_configuration(FunctionName=name)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return False
        return None
    except BotoCoreError:
        return None


@logger.inject_lambda_context(log_event=True)
def plan_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"request": <workflow input>, "executionName": ...}`` -> the run descriptor the workflow carries."""
    request = parse_request(event.get("request", {}))
    run_id = event.get("executionName") or context.aws_request_id
    run = make_plan(request, run_id, function_name=function_name(request.model), deployed=function_deployed)
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
