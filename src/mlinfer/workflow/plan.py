"""Validate a batch-run request and cut its JSONL input into batches (byte ranges, not data).

The plan is a JSON array with one entry per batch; the Distributed Map reads it with ItemReader, the
monolithic loop and the local runner read the same file. Each entry holds only references, so state
payloads stay a few hundred bytes whatever the batch size.
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlinfer.runtime.errors import BatchError, SourceReadError
from mlinfer.runtime.storage import BOM, copy_stream, iter_chunks, open_binary, read_bytes, split_s3_uri, write_bytes
from mlinfer.workflow.layout import RunLayout

#: Distributed Map runs at most 10,000 child executions at once.
MAX_CONCURRENCY = 10_000


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


GZIP_MAGIC = b"\x1f\x8b"


def decompress_input(uri: str, layout: RunLayout) -> str:
    """A gzip-compressed input, decompressed as a stream into the run's prefix (``input.jsonl``), so that
    batches can be byte ranges of it; the URI to plan over."""
    target = layout.prefix + "input.jsonl"
    try:
        copy_stream(gzip.GzipFile(fileobj=open_binary(uri), mode="rb"), target)
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceReadError(f"cannot decompress {uri}: {exc}") from exc
    return target


def scan_batches(uri: str, batch_size: int) -> tuple[list[int], int, int]:
    """One pass over the object: the start byte of every batch's first line, the number of lines and the
    object's size. Memory grows with the number of batches, not lines. A leading BOM is skipped; a last
    line without a newline counts."""
    skip = len(BOM) if read_bytes(uri, 0, len(BOM)) == BOM else 0
    starts: list[int] = []
    lines, pos, line_start = 0, skip, True
    for chunk in iter_chunks(uri, skip or None):
        i = 0
        while i < len(chunk):
            if line_start:
                if lines % batch_size == 0:
                    starts.append(pos + i)
                lines += 1
                line_start = False
            nl = chunk.find(b"\n", i)
            if nl < 0:
                break
            i, line_start = nl + 1, True
        pos += len(chunk)
    return starts, lines, pos


def build_plan(uri: str, batch_size: int, layout: RunLayout) -> tuple[list[dict[str, Any]], int]:
    """Batch entries (source slice, output key, error record key) and the number of lines."""
    starts, n_lines, size = scan_batches(uri, batch_size)
    entries = []
    for index, start in enumerate(starts):
        first = index * batch_size
        entry: dict[str, Any] = {
            "index": index,
            "source": {
                "uri": uri,
                "offset": first,
                "limit": min(batch_size, n_lines - first),
                "byteStart": start,
                "byteEnd": starts[index + 1] if index + 1 < len(starts) else size,
            },
            "output": {"uri": layout.batch_results(index)},
        }
        if layout.is_s3:
            entry["errorBucket"], entry["errorKey"] = layout.bucket_key(layout.batch_error(index))
        entries.append(entry)
    return entries, n_lines


def default_output(request: RunRequest, run_id: str) -> str:
    """``s3://<input bucket>/runs/<model>/<run id>/`` for S3 inputs."""
    if request.input.startswith("s3://"):
        bucket, _ = split_s3_uri(request.input)
        return f"s3://{bucket}/runs/{request.model}/{run_id}/"
    raise InvalidRequestError("'output' is required when the input is not on S3")


def make_plan(
    request: RunRequest,
    run_id: str,
    function_name: str | None = None,
    deployed: Callable[[str], bool | None] | None = None,
) -> dict[str, Any]:
    """Validate, scan the input, write ``plan.json``; return the small run descriptor the workflow carries.

    ``deployed(function_name)`` says whether the model's function exists (``None``: cannot tell), so that a
    model without a function fails here, before any batch runs."""
    from mlinfer.models.registry import get_spec
    from mlinfer.runtime.errors import UnknownModelError

    get_spec(request.model)
    if function_name and deployed is not None and deployed(function_name) is False:
        raise UnknownModelError(
            f"model {request.model!r} has no function in this stack ({function_name} not found); "
            "see docs/adding-a-model.md"
        )
    layout = RunLayout(request.output or default_output(request, run_id))
    source = request.input
    if read_bytes(source, 0, len(GZIP_MAGIC)) == GZIP_MAGIC:
        source = decompress_input(source, layout)
    entries, items = build_plan(source, request.batch_size, layout)
    write_bytes(layout.plan, json.dumps(entries).encode(), "application/json")
    plan_bucket, plan_key = layout.bucket_key(layout.plan) if layout.is_s3 else (None, None)
    return {
        "runId": run_id,
        "model": request.model,
        "functionName": function_name,
        "input": request.input,
        "source": source,
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
