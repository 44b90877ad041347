"""Event and result models: the one place where the batch schema is defined.

Accepted event shapes (see :func:`parse_event`):

* direct / ``sam local invoke``: ``{"items": [...]}``
* Step Functions Distributed Map with ItemBatcher: ``{"Items": [...], "BatchInput": {...}}``
* a slice of an S3 (or local) JSONL object: ``{"source": {"uri": "s3://b/k.jsonl", "offset": 0, "limit": 100}}``
* the monolithic loop: ``{"plan": {"uri": "s3://b/runs/x/plan.json"}, "cursor": 0}`` runs the plan's batches in
  sequence from ``cursor`` while time remains and returns the next cursor

Any of them may add ``"output": {"uri": "s3://b/prefix/batch-000001.jsonl"}`` to have the results
written there instead of returned, and ``"batch"`` (an index used in logs and result keys).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlinfer.runtime.errors import InvalidEventError


class SourceRef(BaseModel):
    """A slice of a JSONL object: lines ``offset .. offset+limit-1`` (0-based, counting every line).

    ``byte_start``/``byte_end`` (optional) let the reader fetch only that byte range (an S3 ranged GET);
    the planner of the batch workflow fills them in so that a worker never reads the whole object.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    uri: str = Field(min_length=1)
    offset: int = Field(default=0, ge=0)
    limit: int | None = Field(default=None, ge=1)
    byte_start: int | None = Field(default=None, ge=0, alias="byteStart")
    byte_end: int | None = Field(default=None, ge=0, alias="byteEnd")


class OutputRef(BaseModel):
    """Where to write results (JSONL). Written whole, so a retried batch overwrites, never duplicates."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field(min_length=1)


class PlanRef(BaseModel):
    """A run plan (JSON array of batch entries, see :mod:`mlinfer.workflow.plan`)."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field(min_length=1)


class BatchRequest(BaseModel):
    """The normalised request every event shape is turned into."""

    model_config = ConfigDict(extra="ignore")

    items: list[Any] | None = None
    source: SourceRef | None = None
    plan: PlanRef | None = None
    cursor: int = Field(default=0, ge=0)
    output: OutputRef | None = None
    batch: int | None = None
    #: Which try of this batch this is (0 first; the workflow passes ``$$.State.RetryCount``).
    attempt: int = Field(default=0, ge=0)
    model: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_input(self) -> BatchRequest:
        if sum(x is not None for x in (self.items, self.source, self.plan)) != 1:
            raise ValueError(
                "give exactly one of 'items' (a list), 'source' (a JSONL slice reference) or 'plan' (a run plan)"
            )
        return self


def parse_event(event: Any) -> BatchRequest:
    """Normalise any accepted event shape into a :class:`BatchRequest`.

    Raises:
        InvalidEventError: the event is not a JSON object of one of the accepted shapes.
    """
    if isinstance(event, str | bytes):
        import json

        try:
            event = json.loads(event)
        except ValueError as exc:
            raise InvalidEventError(f"event is not valid JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise InvalidEventError(f"event must be a JSON object, got {type(event).__name__}")
    body = dict(event)
    if "Items" in body:  # Distributed Map ItemBatcher: BatchInput carries the shared fields.
        batch_input = body.pop("BatchInput", None) or {}
        if not isinstance(batch_input, dict):
            raise InvalidEventError("'BatchInput' must be a JSON object")
        body = {**batch_input, "items": body.pop("Items")}
    if "items" in body and not isinstance(body["items"], list):
        raise InvalidEventError(f"'items' must be a list, got {type(body['items']).__name__}")
    try:
        return BatchRequest.model_validate(body)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'event'}: {err['msg']}" for err in exc.errors())
        raise InvalidEventError(f"invalid batch event: {details}") from exc


class ItemError(BaseModel):
    """Why one item produced no result."""

    type: str
    message: str


class ItemResult(BaseModel):
    """Exactly one per input item: a ``result`` or an ``error``."""

    model_config = ConfigDict(extra="forbid")

    id: Any
    result: Any | None = None
    error: ItemError | None = None
    line: int | None = None

    @classmethod
    def ok(cls, item_id: Any, result: Any) -> ItemResult:
        return cls(id=item_id, result=result)

    @classmethod
    def fail(cls, item_id: Any, error_type: str, message: str, line: int | None = None) -> ItemResult:
        return cls(id=item_id, error=ItemError(type=error_type, message=message), line=line)

    def to_line(self) -> dict[str, Any]:
        """The JSONL form: ``{"id", "result"}`` or ``{"id", "error"}`` (with ``line`` when there is no id)."""
        if self.error is not None:
            out = {"id": self.id, "error": self.error.model_dump()}
            if self.line is not None:
                out["line"] = self.line
            return out
        return {"id": self.id, "result": self.result}


class BatchResponse(BaseModel):
    """What a function returns. ``results`` is omitted when they were written to ``results_uri``."""

    model: str
    batch: int | None = None
    items: int
    succeeded: int
    failed: int
    results: list[dict[str, Any]] | None = None
    results_uri: str | None = Field(default=None, serialization_alias="resultsUri")
    cold_start: bool = Field(serialization_alias="coldStart")
    timings_ms: dict[str, float] = Field(serialization_alias="timingsMs")
    request_id: str | None = Field(default=None, serialization_alias="requestId")
    status: Literal["ok"] = "ok"
