"""Validate a batch-run request and cut its JSONL input into batches (byte ranges, not data).

The plan is a JSON array with one entry per batch; the Distributed Map reads it with ItemReader, the
monolithic loop and the local runner read the same file. Each entry holds only references, so state
payloads stay a few hundred bytes whatever the batch size.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlinfer.runtime.errors import BatchError, SourceReadError
from mlinfer.runtime.storage import s3_client, split_s3_uri, write_bytes
from mlinfer.workflow.layout import RunLayout

#: Distributed Map runs at most 10,000 child executions at once.
MAX_CONCURRENCY = 10_000
SCAN_CHUNK = 1 << 20


class InvalidRequestError(BatchError):
    """The workflow input is missing a field or has a value out of range."""


class RunRequest(BaseModel):
    """The workflow input: ``{"model", "input", "output", "batchSize", "maxConcurrency", "mode", ...}``."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    model: str = Field(min_length=1)
    input: str = Field(min_length=1)
    output: str | None = None
    batch_size: int = Field(default=100, ge=1, le=100_000, alias="batchSize")
    max_concurrency: int = Field(default=50, ge=1, le=MAX_CONCURRENCY, alias="maxConcurrency")
    mode: Literal["parallel", "monolithic"] = "parallel"
    tolerated_failure_percentage: float = Field(default=0.0, ge=0, le=100, alias="toleratedFailurePercentage")


def parse_request(payload: Any) -> RunRequest:
    """Validate the workflow input; :class:`InvalidRequestError` names every bad field."""
    try:
        return RunRequest.model_validate(payload)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors())
        raise InvalidRequestError(f"invalid run request: {details}") from exc


def _chunks(uri: str):
    """The object's bytes in chunks (streamed from S3; read from disk locally)."""
    try:
        if uri.startswith("s3://"):
            bucket, key = split_s3_uri(uri)
            yield from s3_client().get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(SCAN_CHUNK)
            return
        path = uri[len("file://") :] if uri.startswith("file://") else uri
        with open(path, "rb") as fh:
            while chunk := fh.read(SCAN_CHUNK):
                yield chunk
    except SourceReadError:
        raise
    except Exception as exc:
        raise SourceReadError(f"cannot read {uri}: {exc}") from exc


def line_offsets(uri: str) -> tuple[list[int], int]:
    """Start byte of every line and the object size. A last line without a newline counts."""
    starts: list[int] = []
    pos = 0
    at_line_start = True
    for chunk in _chunks(uri):
        i = 0
        while i < len(chunk):
            if at_line_start:
                starts.append(pos + i)
                at_line_start = False
            nl = chunk.find(b"\n", i)
            if nl < 0:
                break
            i = nl + 1
            at_line_start = True
        pos += len(chunk)
    return starts, pos


def build_plan(uri: str, batch_size: int, layout: RunLayout) -> tuple[list[dict[str, Any]], int]:
    """Batch entries (source slice, output key, error record key) and the number of lines."""
    starts, size = line_offsets(uri)
    entries = []
    for index, first in enumerate(range(0, len(starts), batch_size)):
        last = min(first + batch_size, len(starts))
        entry: dict[str, Any] = {
            "index": index,
            "source": {
                "uri": uri,
                "offset": first,
                "limit": last - first,
                "byteStart": starts[first],
                "byteEnd": starts[last] if last < len(starts) else size,
            },
            "output": {"uri": layout.batch_results(index)},
        }
        if layout.is_s3:
            entry["errorBucket"], entry["errorKey"] = layout.bucket_key(layout.batch_error(index))
        entries.append(entry)
    return entries, len(starts)


def default_output(request: RunRequest, run_id: str) -> str:
    """``s3://<input bucket>/runs/<model>/<run id>/`` for S3 inputs."""
    if request.input.startswith("s3://"):
        bucket, _ = split_s3_uri(request.input)
        return f"s3://{bucket}/runs/{request.model}/{run_id}/"
    raise InvalidRequestError("'output' is required when the input is not on S3")


def make_plan(
    request: RunRequest, run_id: str, function_name: str | None = None, known_models: set[str] | None = None
) -> dict[str, Any]:
    """Validate, scan the input, write ``plan.json``; return the small run descriptor the workflow carries."""
    from mlinfer.models.registry import get_spec
    from mlinfer.runtime.errors import UnknownModelError

    get_spec(request.model)
    if known_models is not None and request.model not in known_models:
        raise UnknownModelError(
            f"model {request.model!r} has no function in this stack; deployed: {', '.join(sorted(known_models))}"
        )
    layout = RunLayout(request.output or default_output(request, run_id))
    entries, items = build_plan(request.input, request.batch_size, layout)
    write_bytes(layout.plan, json.dumps(entries).encode(), "application/json")
    plan_bucket, plan_key = layout.bucket_key(layout.plan) if layout.is_s3 else (None, None)
    return {
        "runId": run_id,
        "model": request.model,
        "functionName": function_name,
        "input": request.input,
        "prefix": layout.prefix,
        "planUri": layout.plan,
        "planBucket": plan_bucket,
        "planKey": plan_key,
        "cursor": 0,
        "mode": request.mode,
        "batchSize": request.batch_size,
        "maxConcurrency": request.max_concurrency,
        "toleratedFailurePercentage": request.tolerated_failure_percentage,
        "items": items,
        "batches": len(entries),
        "startedAt": time.time(),
    }
