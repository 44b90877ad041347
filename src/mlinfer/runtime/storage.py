"""Read JSONL input and write results, on S3 (``s3://``) or the local file system, in bounded memory.

Input lines are read as bytes from a stream (an S3 ranged GET or a local file), never as a whole: a line
longer than :data:`MAX_LINE_BYTES` is skipped to its end and reported as one oversize line, so any file,
whatever its bytes, yields exactly one entry per line. Lines are numbered from 1, as editors, ``sed -n``
and ``jq`` count; a UTF-8 byte-order mark at the start of a file is ignored.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlinfer.runtime.errors import SourceReadError

#: Longest input line accepted (bytes, newline excluded): a base64 image of 10 MB takes 13.4 MB. Longer lines
#: become one ``LineTooLong`` error each, read past without being held in memory.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: Deepest JSON nesting accepted in a line (items are flat objects; deeper lines are refused, not parsed).
MAX_JSON_DEPTH = 64
#: Bytes per read from S3 or a file.
CHUNK_BYTES = 1 << 20
BOM = b"\xef\xbb\xbf"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


@cache
def s3_client() -> Any:
    """One boto3 S3 client per process (created lazily: local runs never import boto3's S3 models).

    The endpoint follows the standard ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` variables."""
    import boto3

    return boto3.client("s3")


def _local_path(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri)


def iter_chunks(uri: str, byte_start: int | None = None, byte_end: int | None = None) -> Iterator[bytes]:
    """The object's bytes (or ``[byte_start, byte_end)``) in chunks of at most :data:`CHUNK_BYTES`."""
    try:
        if uri.startswith("s3://"):
            bucket, key = split_s3_uri(uri)
            kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
            if byte_start is not None:
                end = "" if byte_end is None else str(byte_end - 1)
                kwargs["Range"] = f"bytes={byte_start}-{end}"
            if byte_end is not None and byte_end <= (byte_start or 0):
                return  # an empty range: S3 would answer with the whole object
            yield from s3_client().get_object(**kwargs)["Body"].iter_chunks(CHUNK_BYTES)
            return
        with _local_path(uri).open("rb") as fh:
            remaining = None
            if byte_start is not None:
                fh.seek(byte_start)
                remaining = None if byte_end is None else max(0, byte_end - byte_start)
            while remaining is None or remaining > 0:
                chunk = fh.read(CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
    except SourceReadError:
        raise
    except Exception as exc:  # botocore ClientError, OSError, ValueError
        raise SourceReadError(f"cannot read {uri}: {exc}") from exc


def open_binary(uri: str) -> Any:
    """A readable binary stream of the whole object (S3's streaming body, or the local file)."""
    try:
        if uri.startswith("s3://"):
            bucket, key = split_s3_uri(uri)
            return s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        return _local_path(uri).open("rb")
    except Exception as exc:
        raise SourceReadError(f"cannot read {uri}: {exc}") from exc


def copy_stream(fileobj: Any, uri: str) -> None:
    """Write a readable binary stream to ``uri`` without holding it (multipart upload on S3)."""
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        s3_client().upload_fileobj(fileobj, bucket, key)
        return
    import shutil

    path = _local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as out:
        shutil.copyfileobj(fileobj, out, CHUNK_BYTES)
    os.replace(tmp, path)


def read_bytes(uri: str, byte_start: int | None = None, byte_end: int | None = None) -> bytes:
    """The object's bytes, or only ``[byte_start, byte_end)`` (for small objects: plans, metadata)."""
    return b"".join(iter_chunks(uri, byte_start, byte_end))


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


def meta_uri(results_uri: str) -> str:
    """The metadata sidecar written next to a batch's results."""
    stem = results_uri[: -len(".jsonl")] if results_uri.endswith(".jsonl") else results_uri
    return stem + ".meta.json"


def attempt_uri(results_uri: str, attempt: int) -> str:
    """Where a batch's failed try ``attempt`` (0 = the first) records what it cost and why it failed."""
    stem = results_uri[: -len(".jsonl")] if results_uri.endswith(".jsonl") else results_uri
    return f"{stem}.attempt-{attempt}.json"


@dataclass(frozen=True)
class OversizeLine:
    """A line longer than :data:`MAX_LINE_BYTES`; only its length is kept."""

    size: int


def _without_bom(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The stream with a leading UTF-8 byte-order mark removed (spreadsheet and Windows exports write one)."""
    head, it = b"", iter(chunks)
    for chunk in it:
        head += chunk
        if len(head) >= len(BOM):
            break
    if head.removeprefix(BOM):
        yield head.removeprefix(BOM)
    yield from it


def iter_lines(
    chunks: Iterable[bytes], max_bytes: int = MAX_LINE_BYTES, at_file_start: bool = True
) -> Iterator[bytes | OversizeLine]:
    """Split a byte stream on ``\\n`` only (JSON strings may hold U+2028 and other characters that
    ``str.splitlines`` splits on). A last line without a newline counts; a file's leading BOM is dropped; a
    line over ``max_bytes`` yields an :class:`OversizeLine` and is not kept in memory."""
    buf = bytearray()
    size = 0  # bytes of the current line so far; buf holds them unless the line is oversize
    for chunk in _without_bom(chunks) if at_file_start else chunks:
        pos = 0
        while True:
            nl = chunk.find(b"\n", pos)
            piece = chunk[pos:] if nl < 0 else chunk[pos:nl]
            size += len(piece)
            if size <= max_bytes:
                buf += piece
            else:
                buf.clear()
            if nl < 0:
                break
            yield bytes(buf) if size <= max_bytes else OversizeLine(size)
            buf.clear()
            size, pos = 0, nl + 1
    if size:
        yield bytes(buf) if size <= max_bytes else OversizeLine(size)


def read_jsonl_slice(
    uri: str,
    offset: int = 0,
    limit: int | None = None,
    byte_start: int | None = None,
    byte_end: int | None = None,
) -> list[tuple[int, bytes | OversizeLine]]:
    """Lines ``offset .. offset+limit-1`` (0-based positions) of a JSONL object as ``(line number from 1,
    raw line)``. With a byte range, the range starts at line ``offset`` (as the planner writes it), so only
    that range is read. Blank lines are kept (they become per-item errors) so that numbers match the file."""
    out: list[tuple[int, bytes | OversizeLine]] = []
    at_start = byte_start in (None, 0)
    lines = iter_lines(iter_chunks(uri, byte_start, byte_end), at_file_start=at_start)
    skip = 0 if byte_start is not None else offset
    for n, raw in enumerate(lines):
        if n < skip:
            continue
        if limit is not None and len(out) >= limit:
            break
        out.append((offset + len(out) + 1, raw))
    return out


def _nesting_depth(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit`` (checked before parsing, which recurses)."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


class LineError(ValueError):
    """A line that is not a JSON value; ``type`` names why (``InvalidJson``, ``InvalidUtf8``, ``LineTooLong``)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.type = error_type


def parse_jsonl_line(raw: bytes | str | OversizeLine) -> Any:
    """Parse one line; raises :class:`LineError` with a readable message, whatever the bytes.

    Accepted as Python's ``json`` does: duplicate keys (the last wins) and the constants ``NaN`` and
    ``Infinity`` (per-field validation then refuses non-finite values where numbers are expected)."""
    if isinstance(raw, OversizeLine):
        raise LineError("LineTooLong", f"line is {raw.size:,} bytes; the limit is {MAX_LINE_BYTES:,} (MAX_LINE_BYTES)")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start : exc.start + 1]
            raise LineError("InvalidUtf8", f"not valid UTF-8 (byte {exc.start}: {bad!r})") from None
    if not raw.strip():
        raise LineError("InvalidJson", "blank line")
    if raw.count("[") + raw.count("{") > MAX_JSON_DEPTH and _nesting_depth(raw, MAX_JSON_DEPTH):
        raise LineError("InvalidJson", f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(raw)
    except RecursionError:
        raise LineError("InvalidJson", f"JSON nests deeper than {sys.getrecursionlimit()} levels") from None
    except ValueError as exc:  # JSONDecodeError, or an integer over Python's digit limit
        raise LineError("InvalidJson", f"not valid JSON: {exc}") from None


def dump_line(row: dict[str, Any]) -> str:
    """One output line as strict JSON (no NaN or Infinity, which ``jq`` and other parsers refuse)."""
    return json.dumps(row, ensure_ascii=False, allow_nan=False)


class _LineStream(io.RawIOBase):
    """A read-only file over an iterator of text lines (for streaming uploads)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._buf = b""
        self.written = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while len(self._buf) < len(b):
            nxt = next(self._lines, None)
            if nxt is None:
                break
            self._buf += (nxt + "\n").encode("utf-8")
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        self.written += n
        return n


def write_lines(uri: str, lines: Iterable[str], content_type: str = "application/x-ndjson") -> int:
    """Write text lines as one object, streamed (multipart on S3; a temporary file renamed into place
    locally), so that neither the lines nor the object are ever held whole. Returns the bytes written."""
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        stream = _LineStream(lines)
        s3_client().upload_fileobj(stream, bucket, key, ExtraArgs={"ContentType": content_type})
        return stream.written
    path = _local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    written = 0
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        for line in lines:
            written += fh.write(line + "\n")
    os.replace(tmp, path)
    return written


def write_jsonl(uri: str, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSONL (whole object: a retry overwrites). Returns the bytes written."""
    body = "".join(dump_line(r) + "\n" for r in rows).encode("utf-8")
    write_bytes(uri, body, "application/x-ndjson")
    return len(body)


def write_bytes(uri: str, body: bytes, content_type: str = "application/octet-stream") -> None:
    """Write an object on S3, or a local file atomically (a temporary file renamed into place, so that a
    run killed mid-write never leaves half a file behind; parents created)."""
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        s3_client().put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        return
    path = _local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(body)
    os.replace(tmp, path)
