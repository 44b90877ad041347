"""The handler wrapper every function uses ("Algorithm 1" of Lambda ML benchmarking).

Per invocation: extract the batch from the event, validate each item, run the model (loaded once per
execution environment), log and emit metrics, return (or write) one result per item.

    # functions/<family>/app.py
    from mlinfer.runtime import create_handler
    handler = create_handler()          # model from MODEL_NAME; loaded now, during INIT
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from mlinfer.models.base import ModelAdapter
from mlinfer.models.registry import artifact_path, get_spec
from mlinfer.runtime import metrics as m
from mlinfer.runtime.errors import InvalidEventError, UnknownModelError
from mlinfer.runtime.events import BatchRequest, BatchResponse, ItemResult, parse_event
from mlinfer.runtime.items import ItemInputError, as_mapping, item_id
from mlinfer.runtime.storage import (
    LineError,
    attempt_uri,
    dump_line,
    meta_uri,
    parse_jsonl_line,
    read_bytes,
    read_jsonl_slice,
    write_bytes,
    write_lines,
)
from mlinfer.runtime.threads import configure_threads, peak_rss_mb

_IMPORTED_AT = time.perf_counter()

#: Synchronous invocation responses are capped at 6 MB; above this, results go to S3 instead.
RESPONSE_LIMIT_BYTES = 5_500_000
#: Monolithic mode stops taking batches when less than this (plus twice the slowest batch) remains.
TIME_SAFETY_MS = 5_000
#: ... and after this many batches, so that one invocation's EMF blob stays within CloudWatch's limits.
MAX_BATCHES_PER_INVOCATION = 100

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", m.NAMESPACE))


def architecture() -> str:
    """``x86_64`` or ``arm64`` as Lambda names them (``MLINFER_ARCHITECTURE`` overrides, for projections)."""
    arch = os.environ.get("MLINFER_ARCHITECTURE") or platform.machine()
    return "arm64" if arch in {"aarch64", "arm64"} else "x86_64"


class InferenceRuntime:
    """One model, loaded once, serving batches. Independent of Lambda so the local runner reuses it."""

    def __init__(self, model_name: str | None = None, adapter: ModelAdapter | None = None) -> None:
        self.model_name = model_name or os.environ.get("MODEL_NAME", "")
        if not self.model_name:
            raise UnknownModelError("no model configured: set the MODEL_NAME environment variable")
        spec = get_spec(self.model_name)
        adapter_class = spec.adapter_class()  # imports the family's libraries (counted as import time)
        self.threads = configure_threads()
        t0 = time.perf_counter()
        self.adapter = adapter or adapter_class.load(artifact_path(self.model_name), name=self.model_name)
        self.model_load_ms = (time.perf_counter() - t0) * 1000
        self.import_ms = (t0 - _IMPORTED_AT) * 1000
        self.invocations = 0

    # -- one batch ---------------------------------------------------------------------------------
    def _raw_items(self, request: BatchRequest) -> list[tuple[Any, Any, int | None]]:
        """``(item, id if it has none, line number)``; lines that are not JSON become input errors."""
        if request.items is not None:
            return [(item, pos, None) for pos, item in enumerate(request.items)]
        src = request.source
        assert src is not None
        out: list[tuple[Any, Any, int | None]] = []
        for line_no, raw in read_jsonl_slice(src.uri, src.offset, src.limit, src.byte_start, src.byte_end):
            try:
                item = parse_jsonl_line(raw)
            except LineError as exc:
                item = ItemInputError(exc.type, f"line {line_no}: {exc}")
            if not isinstance(item, dict | ItemInputError):
                item = ItemInputError(
                    "InvalidItem", f"line {line_no}: expected a JSON object, got {type(item).__name__}"
                )
            out.append((item, None, line_no))
        return out

    def run_batch(self, request: BatchRequest) -> tuple[list[ItemResult], dict[str, float]]:
        """Validate and predict; exactly one :class:`ItemResult` per item, in order."""
        t0 = time.perf_counter()
        raw = self._raw_items(request)
        t1 = time.perf_counter()
        results: list[ItemResult | None] = [None] * len(raw)
        ids = [item_id(item, fallback) for item, fallback, _ in raw]
        valid_pos, inputs = [], []
        for pos, (item, _, line) in enumerate(raw):
            try:
                if isinstance(item, ItemInputError):
                    raise item
                inputs.append(self.adapter.validate(as_mapping(item)))
                valid_pos.append(pos)
            except ItemInputError as exc:
                results[pos] = ItemResult.fail(ids[pos], exc.type, str(exc), line if ids[pos] is None else None)
        outputs = self._predict_isolating_failures(inputs, request.options)
        for pos, out in zip(valid_pos, outputs, strict=True):
            if isinstance(out, ItemInputError):
                results[pos] = ItemResult.fail(ids[pos], out.type, str(out))
            else:
                results[pos] = ItemResult.ok(ids[pos], out)
        t2 = time.perf_counter()
        timings = {"read": (t1 - t0) * 1000, "inference": (t2 - t1) * 1000}
        return [r for r in results if r is not None], timings

    def _predict_isolating_failures(self, inputs: list[Any], options: dict[str, Any]) -> list[Any]:
        """Predict the batch; if it raises, predict item by item so one bad item fails alone.

        A failed item's slot holds an :class:`ItemInputError` instead of a result.
        """
        try:
            outputs = self.adapter.predict(inputs, options)
            if len(outputs) != len(inputs):
                raise RuntimeError(f"adapter returned {len(outputs)} results for {len(inputs)} inputs")
            return outputs
        except Exception:
            logger.exception("batch prediction failed; retrying item by item")
        outputs = []
        for one in inputs:
            try:
                outputs.append(self.adapter.predict([one], options)[0])
            except Exception as exc:
                outputs.append(ItemInputError("PredictionError", f"{type(exc).__name__}: {exc}"))
        return outputs

    def serve(self, request: BatchRequest, context: Any) -> BatchResponse:
        """One batch: predict, then return the results or write them (and a ``.meta.json`` sidecar)."""
        started = time.perf_counter()
        cold = self.invocations == 0
        self.invocations += 1
        results, timings = self.run_batch(request)
        lines = [_strict_line(r) for r in results]
        failed = sum(1 for line in lines if "error" in line[0])
        response = BatchResponse(
            model=self.model_name,
            batch=request.batch,
            items=len(results),
            succeeded=len(results) - failed,
            failed=failed,
            cold_start=cold,
            timings_ms={},
            request_id=getattr(context, "aws_request_id", None),
        )
        t0 = time.perf_counter()
        out_uri = request.output.uri if request.output else None
        if out_uri is None and sum(len(text) + 2 for _, text in lines) > RESPONSE_LIMIT_BYTES:
            out_uri = self._overflow_uri(request, context)
        if out_uri:
            write_lines(out_uri, [text for _, text in lines])
            response.results_uri = out_uri
        else:
            response.results = [row for row, _ in lines]
        timings["write"] = (time.perf_counter() - t0) * 1000
        if cold:
            timings["model_load"] = self.model_load_ms
            timings["import"] = self.import_ms
        timings["total"] = (time.perf_counter() - started) * 1000
        response.timings_ms = {k: round(v, 3) for k, v in timings.items()}
        if out_uri and request.output is not None:
            meta = response.model_dump(by_alias=True, exclude_none=True)
            meta.update(
                memoryMb=_memory_mb(context), architecture=architecture(), threads=self.threads, attempt=request.attempt
            )
            write_bytes(meta_uri(out_uri), json.dumps(meta).encode(), "application/json")
        logger.info(
            "batch done",
            extra={
                "batch": request.batch,
                "items": response.items,
                "failed": failed,
                "timings_ms": response.timings_ms,
            },
        )
        return response

    def run_plan(self, request: BatchRequest, context: Any) -> tuple[list[BatchResponse], dict[str, Any]]:
        """Monolithic mode: the plan's batches in sequence from ``cursor``, stopping while time remains."""
        assert request.plan is not None
        entries = json.loads(read_bytes(request.plan.uri))
        cursor, served, slowest_ms = request.cursor, [], 0.0
        while cursor < len(entries) and len(served) < MAX_BATCHES_PER_INVOCATION:
            remaining = context.get_remaining_time_in_millis() if context is not None else float("inf")
            if served and remaining < TIME_SAFETY_MS + 2 * slowest_ms:
                break  # return the cursor; the workflow invokes again
            entry = entries[cursor]
            t0 = time.perf_counter()
            # The invocation's try number goes with its first batch only, so a summary counts each retry once.
            attempt = request.attempt if not served else 0
            sub = BatchRequest(source=entry["source"], output=entry["output"], batch=entry["index"], attempt=attempt)
            served.append(self.serve(sub, context))
            slowest_ms = max(slowest_ms, (time.perf_counter() - t0) * 1000)
            cursor += 1
        progress = {"cursor": cursor, "done": cursor >= len(entries), "batches": len(served), "total": len(entries)}
        return served, progress

    def handle(self, event: Any, context: Any) -> dict[str, Any]:
        """Serve one invocation; emits metrics via the module's :data:`metrics`."""
        request = parse_event(event)
        if request.model and request.model != self.model_name:
            raise UnknownModelError(f"this function serves {self.model_name!r}, not {request.model!r}")
        if request.plan is not None:
            served, progress = self.run_plan(request, context)
            self._emit_metrics(served, context)
            return {"model": self.model_name, **progress}
        started, cold = time.perf_counter(), self.invocations == 0
        try:
            response = self.serve(request, context)
        except Exception as exc:
            self._record_failed_attempt(request, context, exc, (time.perf_counter() - started) * 1000, cold)
            raise
        self._emit_metrics([response], context)
        return response.model_dump(by_alias=True, exclude_none=True)

    def _record_failed_attempt(
        self, request: BatchRequest, context: Any, exc: Exception, duration_ms: float, cold: bool
    ) -> None:
        """Leave a note of a failed try next to the batch's results, so the run's cost counts it (best effort:
        the workflow retries or records the batch either way; a timed-out or crashed try leaves none)."""
        if request.output is None or request.batch is None:
            return
        note = {
            "batch": request.batch,
            "attempt": request.attempt,
            "errorType": type(exc).__name__,
            "durationMs": round(duration_ms, 3),
            "initMs": round(self.import_ms + self.model_load_ms, 3) if cold else None,
            "memoryMb": _memory_mb(context),
            "requestId": getattr(context, "aws_request_id", None),
        }
        try:
            write_bytes(attempt_uri(request.output.uri, request.attempt), json.dumps(note).encode(), "application/json")
        except Exception:
            logger.warning("could not record the failed attempt", extra={"batch": request.batch}, exc_info=True)

    def _overflow_uri(self, request: BatchRequest, context: Any) -> str:
        """Where oversize results go: next to the source slice, or in ``RESULTS_BUCKET``."""
        rid = getattr(context, "aws_request_id", "local")
        if request.source is not None:
            return f"{request.source.uri}.results/{request.source.offset:09d}.jsonl"
        bucket = os.environ.get("RESULTS_BUCKET")
        if not bucket:
            raise InvalidEventError("results exceed the response limit: add 'output' or set RESULTS_BUCKET")
        return f"s3://{bucket}/results/{self.model_name}/{rid}.jsonl"

    def _emit_metrics(self, responses: list[BatchResponse], context: Any) -> None:
        metrics.add_dimension(name="model", value=self.model_name)
        metrics.add_dimension(name="memory_mb", value=str(_memory_mb(context)))
        metrics.add_dimension(name="architecture", value=architecture())
        for response in responses:
            t = response.timings_ms
            metrics.add_metric(name=m.BATCH_SIZE, unit=MetricUnit.Count, value=response.items)
            metrics.add_metric(name=m.ITEMS_PROCESSED, unit=MetricUnit.Count, value=response.succeeded)
            metrics.add_metric(name=m.ITEM_ERRORS, unit=MetricUnit.Count, value=response.failed)
            metrics.add_metric(name=m.INFERENCE_TIME, unit=MetricUnit.Milliseconds, value=t["inference"])
            metrics.add_metric(name=m.READ_TIME, unit=MetricUnit.Milliseconds, value=t["read"])
            metrics.add_metric(name=m.WRITE_TIME, unit=MetricUnit.Milliseconds, value=t["write"])
            if response.cold_start:
                metrics.add_metric(name=m.MODEL_LOAD_TIME, unit=MetricUnit.Milliseconds, value=t["model_load"])
                metrics.add_metric(name=m.IMPORT_TIME, unit=MetricUnit.Milliseconds, value=t["import"])
                metrics.add_metric(name=m.INIT_TIME, unit=MetricUnit.Milliseconds, value=t["import"] + t["model_load"])
        for name, unit, value in self.adapter.drain_metrics():
            metrics.add_metric(name=name, unit=MetricUnit(unit), value=value)
        metrics.add_metric(name=m.PEAK_MEMORY, unit=MetricUnit.Megabytes, value=round(peak_rss_mb(), 1))
        metrics.add_metadata(key="request_id", value=getattr(context, "aws_request_id", "") or "")
        metrics.add_metadata(key="batches", value=[r.batch for r in responses])
        metrics.add_metadata(key="threads", value=self.threads)


def _strict_line(result: ItemResult) -> tuple[dict[str, Any], str]:
    """A result's output row and its strict-JSON text; a result that has no strict JSON form (a model that
    returned NaN) becomes an error line instead, so the output always parses."""
    row = result.to_line()
    try:
        return row, dump_line(row)
    except ValueError as exc:
        row = ItemResult.fail(result.id, "NonFiniteResult", f"the model returned a non-finite value: {exc}").to_line()
        return row, dump_line(row)


def _memory_mb(context: Any) -> int:
    return int(getattr(context, "memory_limit_in_mb", None) or os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 0))


def create_handler(model_name: str | None = None, adapter: ModelAdapter | None = None) -> Callable[..., Any]:
    """Load the model now (module scope = once per execution environment) and return the Lambda handler."""
    runtime = InferenceRuntime(model_name, adapter)

    @logger.inject_lambda_context(log_event=False)
    @tracer.capture_lambda_handler
    @metrics.log_metrics(capture_cold_start_metric=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        logger.append_keys(model=runtime.model_name)
        try:
            return runtime.handle(event, context)
        except Exception:
            metrics.add_dimension(name="model", value=runtime.model_name)
            metrics.add_metric(name=m.BATCH_FAILURES, unit=MetricUnit.Count, value=1)
            raise

    handler.runtime = runtime  # type: ignore[attr-defined]
    return handler
