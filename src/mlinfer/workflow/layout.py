"""Where a run's files go. Same layout on S3 (``s3://bucket/runs/<id>/``) and locally (``DIR/``)."""

from __future__ import annotations

from dataclasses import dataclass

from mlinfer.runtime.storage import meta_uri, split_s3_uri


@dataclass(frozen=True)
class RunLayout:
    """Deterministic keys: a retried batch overwrites its own files, never adds new ones."""

    prefix: str

    def __post_init__(self) -> None:
        if not self.prefix.endswith("/"):
            object.__setattr__(self, "prefix", self.prefix + "/")

    @property
    def plan(self) -> str:
        return self.prefix + "plan.json"

    @property
    def results(self) -> str:
        return self.prefix + "results.jsonl"

    @property
    def summary(self) -> str:
        return self.prefix + "summary.json"

    def batch_results(self, index: int) -> str:
        return f"{self.prefix}batches/{index:06d}.jsonl"

    def batch_meta(self, index: int) -> str:
        return meta_uri(self.batch_results(index))

    def batch_error(self, index: int) -> str:
        return f"{self.prefix}batches/{index:06d}.error.json"

    @property
    def is_s3(self) -> bool:
        return self.prefix.startswith("s3://")

    def bucket_key(self, uri: str) -> tuple[str, str]:
        """``(bucket, key)`` of one of this run's S3 URIs (used by the workflow's error records)."""
        return split_s3_uri(uri)
