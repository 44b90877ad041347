"""The rest of a run's bill: S3 requests and CloudWatch Logs ingestion.

S3 requests follow from what the workflow does (``statemachine/batch_inference.asl.json`` and the
handlers), counted per run:

* Plan: one GET streaming the input (two more and a multipart upload when it is gzip: decompressed into
  the run's folder), one PUT of ``plan.json``.
* parallel: the Distributed Map's ItemReader GETs ``plan.json`` and its ResultWriter PUTs up to three
  objects (manifest, succeeded, failed). Each batch: a ranged GET of its slice, a PUT of its results and
  one of its metadata; a failed try that left a note, one PUT; a failed batch, the PUT of its error record.
* monolithic: a GET of ``plan.json`` per invocation; each batch its GET and two PUTs.
* Summarize: per batch, a HEAD and a GET of the results and of the metadata (a failed batch: its error
  record and a GET of its slice for the ids); ``results.jsonl`` as one PUT, or a multipart upload of
  8 MiB parts; a PUT of ``summary.json``.

HEAD and GET are billed at the GET rate, PUT and multipart calls at the PUT rate. Storage (per GB-month)
is not a per-run charge and is left out. Logs: the bytes of the run's log lines (START/END/REPORT,
Powertools' JSON logs and EMF metrics), at the ingestion price; their storage is left out too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from mlinfer.cost.pricing import DEFAULT_REGION, load_prices

MULTIPART_PART_BYTES = 8 * 1024 * 1024  # boto3's default multipart threshold and part size
MAP_RESULT_WRITER_PUTS = 3


@dataclass
class S3Requests:
    gets: int
    puts: int
    usd: float

    def to_dict(self) -> dict:
        return asdict(self)


def _upload_puts(nbytes: int) -> int:
    """PUT-class requests of one upload: one PUT, or create + parts + complete."""
    if nbytes <= MULTIPART_PART_BYTES:
        return 1
    return math.ceil(nbytes / MULTIPART_PART_BYTES) + 2


def run_s3_requests(
    mode: str,
    batches: int,
    failed_batches: int = 0,
    failed_try_notes: int = 0,
    invocations: int = 1,
    results_bytes: int = 0,
    gzip_input_bytes: int | None = None,
    region: str = DEFAULT_REGION,
) -> S3Requests:
    """S3 requests of one run (see the module docstring), priced."""
    ok = batches - failed_batches
    gets, puts = 1, 1  # Plan: stream the input, write plan.json
    if gzip_input_bytes is not None:
        gets += 1
        puts += _upload_puts(gzip_input_bytes * 4)  # decompressed, text compresses about 4:1
    if mode == "parallel":
        gets += 1
        puts += MAP_RESULT_WRITER_PUTS
    else:
        gets += invocations
    gets += ok  # each finished batch read its slice
    puts += 2 * ok + failed_try_notes + failed_batches
    gets += 4 * ok + 3 * failed_batches  # Summarize: HEAD + GET of results and metadata; error record + slice
    puts += _upload_puts(results_bytes) + 1  # results.jsonl and summary.json
    table = load_prices(region).table["s3"]
    return S3Requests(gets, puts, gets * table["get_request"] + puts * table["put_request"])


def logs_cost(log_bytes: int | None, region: str = DEFAULT_REGION) -> dict:
    """CloudWatch Logs ingestion of ``log_bytes`` (None: not measured)."""
    if log_bytes is None:
        return {"bytes": None, "usd": 0.0, "note": "not measured here: see the log groups' IncomingBytes"}
    price = load_prices(region).table["logs"]["ingestion_gb"]
    return {"bytes": log_bytes, "usd": log_bytes / 1024**3 * price}
