"""Read JSONL slices and write JSONL results, on S3 (``s3://``) or the local file system."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlinfer.runtime.errors import SourceReadError


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


@cache
def s3_client() -> Any:
    """One boto3 S3 client per process (created lazily: local runs never import boto3's S3 models)."""
    import boto3

    return boto3.client("s3")


def _local_path(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri)


def read_bytes(uri: str, byte_start: int | None = None, byte_end: int | None = None) -> bytes:
    """The object's bytes, or only ``[byte_start, byte_end)`` when given (an S3 ranged GET)."""
    try:
        if uri.startswith("s3://"):
            bucket, key = split_s3_uri(uri)
            kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
            if byte_start is not None:
                end = "" if byte_end is None else str(byte_end - 1)
                kwargs["Range"] = f"bytes={byte_start}-{end}"
            return s3_client().get_object(**kwargs)["Body"].read()
        with _local_path(uri).open("rb") as fh:
            if byte_start is not None:
                fh.seek(byte_start)
                return fh.read(None if byte_end is None else byte_end - byte_start)
            return fh.read()
    except Exception as exc:  # botocore ClientError, OSError, ValueError
        raise SourceReadError(f"cannot read {uri}: {exc}") from exc


def exists(uri: str) -> bool:
    """Whether the object (or local file) exists."""
    if uri.startswith("s3://"):
        from botocore.exceptions import ClientError

        bucket, key = split_s3_uri(uri)
        try:
            s3_client().head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
    return _local_path(uri).exists()


def read_jsonl_slice(
    uri: str,
    offset: int = 0,
    limit: int | None = None,
    byte_start: int | None = None,
    byte_end: int | None = None,
) -> list[tuple[int, str]]:
    """Lines ``offset .. offset+limit-1`` of a JSONL object as ``(line_number, text)``.

    With a byte range, the range must start at line ``offset`` (as the planner writes it). Blank lines
    are kept (they become per-item errors) so that line numbers match the file.
    """
    data = read_bytes(uri, byte_start, byte_end)
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    start = 0 if byte_start is not None else offset
    chosen = lines[start : None if limit is None else start + limit]
    return [(offset + i, line) for i, line in enumerate(chosen)]


def parse_jsonl_line(line: str) -> Any:
    """Parse one line; raises ``ValueError`` with a readable message."""
    if not line.strip():
        raise ValueError("blank line")
    return json.loads(line)


def write_jsonl(uri: str, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSONL (whole object: a retry overwrites). Returns the bytes written."""
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    write_bytes(uri, body, "application/x-ndjson")
    return len(body)


def write_bytes(uri: str, body: bytes, content_type: str = "application/octet-stream") -> None:
    """Write an object on S3 or a local file (parents created)."""
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        s3_client().put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        return
    path = _local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
