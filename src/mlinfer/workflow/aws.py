"""Run a batch job on the deployed stack: start the state machine, show progress, fetch the summary.

summary = run_on_aws("mlinfer", RunRequest(model="logreg", input="s3://bucket/in.jsonl"))
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import boto3

from mlinfer.workflow.plan import RunRequest

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class StackError(RuntimeError):
    """The stack is missing or lacks the outputs a run needs."""


def stack_outputs(stack: str, region: str | None = None) -> dict[str, str]:
    """The CloudFormation outputs of ``stack`` (``BatchInferenceStateMachineArn``, ``DataBucketName``...)."""
    cfn = boto3.client("cloudformation", region_name=region)
    try:
        described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    except Exception as exc:
        raise StackError(f"cannot describe stack {stack!r}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    for key in ("BatchInferenceStateMachineArn", "DataBucketName"):
        if key not in outputs:
            raise StackError(f"stack {stack!r} has no output {key}; was it deployed from this template?")
    return outputs


def upload_input(path: Path, bucket: str, region: str | None = None) -> str:
    """Put a local JSONL file under ``inputs/`` in the data bucket; return its URI."""
    key = f"inputs/{uuid.uuid4().hex[:8]}-{path.name}"
    boto3.client("s3", region_name=region).upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"


def _map_progress(sfn: Any, execution_arn: str) -> tuple[int, int] | None:
    """``(finished, total)`` child executions of the run's Distributed Map, when one has started."""
    try:
        runs = sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
        if not runs:
            return None
        counts = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"])["itemCounts"]
        return counts["succeeded"] + counts["failed"] + counts.get("timedOut", 0) + counts.get("aborted", 0), counts[
            "total"
        ]
    except Exception:  # progress is best effort; the run itself is what matters
        return None


def wait_for(execution_arn: str, region: str | None = None, poll_s: float = 2.0, progress: bool = True) -> dict:
    """Poll until the execution ends; a progress bar follows the Distributed Map's child executions."""
    from tqdm import tqdm

    sfn = boto3.client("stepfunctions", region_name=region)
    with tqdm(total=None, unit="batch", disable=not progress, leave=False) as bar:
        while (desc := sfn.describe_execution(executionArn=execution_arn))["status"] not in TERMINAL:
            done_total = _map_progress(sfn, execution_arn)
            if done_total:
                bar.total = done_total[1]
                bar.n = done_total[0]
                bar.refresh()
            time.sleep(poll_s)
    return desc


def read_json_uri(uri: str, region: str | None = None) -> dict:
    bucket, key = uri[len("s3://") :].split("/", 1)
    return json.loads(boto3.client("s3", region_name=region).get_object(Bucket=bucket, Key=key)["Body"].read())


def run_on_aws(
    stack: str, request: RunRequest, region: str | None = None, progress: bool = True, poll_s: float = 2.0
) -> dict[str, Any]:
    """Start a run on the stack's state machine, wait, and return its ``summary.json`` (plus status)."""
    outputs = stack_outputs(stack, region)
    if not request.input.startswith("s3://"):
        path = Path(request.input)
        if not path.is_file():
            raise FileNotFoundError(f"input file not found: {path}")
        request = request.model_copy(update={"input": upload_input(path, outputs["DataBucketName"], region)})
    sfn = boto3.client("stepfunctions", region_name=region)
    name = f"{request.model}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    payload = request.model_dump(by_alias=True, exclude_none=True)
    arn = sfn.start_execution(
        stateMachineArn=outputs["BatchInferenceStateMachineArn"], name=name, input=json.dumps(payload)
    )["executionArn"]
    desc = wait_for(arn, region, poll_s, progress)
    if desc["status"] == "SUCCEEDED":
        outcome = json.loads(desc["output"])
        return {**read_json_uri(outcome["summaryUri"], region), "execution_arn": arn}
    return {
        "status": desc["status"],
        "execution_arn": arn,
        "error": desc.get("error"),
        "cause": desc.get("cause"),
    }
