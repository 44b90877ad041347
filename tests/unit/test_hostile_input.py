"""Any line, whatever its bytes, gives exactly one output line, in order, and never fails its batch or the run.

Property-based (Hypothesis): hostile files go through the line reader, the real handler reading an S3
source (moto), and the real local runner (worker processes, plan, summary).
"""

from __future__ import annotations

import itertools
import json
import tracemalloc
from pathlib import Path

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from mlinfer.local.runner import RunConfig, run_local
from mlinfer.runtime import storage
from mlinfer.runtime.handler import create_handler
from mlinfer.runtime.storage import OversizeLine, iter_lines, parse_jsonl_line

GOOD = [json.dumps({"id": f"ok-{i}", "text": t}) for i, t in enumerate(["so happy today", "afraid of the dark"])]
HOSTILE = [
    "[" * 100_000 + "]" * 100_000,  # deeper than any parser's recursion limit
    '{"id": "deep", "text": ' + "[" * 70 + "]" * 70 + "}",
    '{"id": 1e999, "text": "x"}',
    '{"id": "big", "features": [' + "9" * 5000 + "]}",  # over Python's integer digit limit
    '{"id": "nan", "features": [NaN, Infinity, -Infinity]}',
    '{"id": NaN, "text": "an id that is not a string or an integer"}',
    '{"id": {"a": 1}, "text": "object id"}',
    '{"id": "nul\\u0000", "text": "\\u0000"}',
    '{"id": "raw-nul", "text": "a\x00b"}',
    '{"id": "dup", "id": "dup2", "text": "duplicate keys: the last wins"}',
    '{"id": "sep\u2028\u2029\x85", "text": "line and paragraph separators inside a string"}',
    "\ufeff" + GOOD[0],  # a byte-order mark that is not at the start of the file
    "true",
    "null",
    "",
    "   \t ",
    "{",
    '{"id": "surrogate", "text": "\\ud800"}',
]
BAD_BYTES = [b"\xff\xfe\x00", b'{"id": "latin1", "text": "caf\xe9"}', b"\xc3", b"\r"]


def lines_strategy() -> st.SearchStrategy[list[bytes]]:
    known = st.sampled_from([x.encode("utf-8") for x in GOOD + HOSTILE] + BAD_BYTES)
    random = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b" "))
    return st.lists(st.one_of(known, known, random), min_size=1, max_size=30)


def file_bytes(lines: list[bytes], bom: bool, final_newline: bool) -> bytes:
    body = b"\n".join(lines) + (b"\n" if final_newline else b"")
    return (storage.BOM if bom else b"") + body


def check_output(out: list[dict], lines: list[bytes]) -> None:
    """One output line per input line, in order; exactly one of result/error; ids kept where valid."""
    assert len(out) == len(lines)
    for row, raw in zip(out, lines, strict=True):
        assert ("result" in row) != ("error" in row), row
        try:
            obj = parse_jsonl_line(raw)
        except storage.LineError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            assert row["id"] == obj["id"]  # a valid id is carried to its output line
        if row.get("id") is None:
            assert isinstance(row.get("line"), int) and row["line"] >= 1
        json.dumps(row, allow_nan=False)  # strict JSON


@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=8), limit=st.integers(1, 40))
def test_reader_splits_any_bytes_into_exactly_the_lines(data, cuts, limit):
    points = sorted({c for c in cuts if c <= len(data)} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    got = list(iter_lines(chunks, max_bytes=limit))
    want = data.removeprefix(storage.BOM).split(b"\n")
    if want and want[-1] == b"":
        want.pop()
    assert [g if isinstance(g, bytes) else g.size for g in got] == [w if len(w) <= limit else len(w) for w in want]
    assert all(isinstance(g, OversizeLine) == (len(w) > limit) for g, w in zip(got, want, strict=True))


@given(raw=st.binary(max_size=200))
def test_parsing_any_line_raises_only_a_typed_line_error(raw):
    try:
        parse_jsonl_line(raw)
    except storage.LineError as exc:
        assert exc.type in {"InvalidJson", "InvalidUtf8", "LineTooLong"} and str(exc)


def test_a_huge_line_is_skipped_without_holding_it(tmp_path):
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as fh:
        fh.write(GOOD[0].encode() + b"\n" + b'{"id": "huge", "text": "')
        for _ in range(64):
            fh.write(b"x" * (1 << 20))  # 64 MB, four times MAX_LINE_BYTES
        fh.write(b'"}\n' + GOOD[1].encode() + b"\n")
    tracemalloc.start()
    lines = storage.read_jsonl_slice(str(path))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [n for n, _ in lines] == [1, 2, 3]
    assert isinstance(lines[1][1], OversizeLine) and lines[1][1].size > storage.MAX_LINE_BYTES
    # Memory is bounded by the limit (a buffer that grows up to it, then is dropped), not by the line.
    assert peak < 1.5 * storage.MAX_LINE_BYTES + 4 * storage.CHUNK_BYTES < lines[1][1].size / 2
    with pytest.raises(storage.LineError, match="the limit is"):
        parse_jsonl_line(lines[1][1])


@pytest.fixture(scope="module")
def s3_handler(model_root):
    import os

    os.environ["MODEL_DIR"] = str(model_root)
    return create_handler("logreg")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=lines_strategy(), bom=st.booleans(), final_newline=st.booleans())
def test_the_handler_on_an_s3_source_accounts_for_every_line(s3_handler, lambda_context, lines, bom, final_newline):
    if not final_newline:  # without a final newline, trailing empty lines are not lines at all
        while lines and lines[-1] == b"":
            lines = lines[:-1]
        lines = lines or [b"x"]
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="in.jsonl", Body=file_bytes(lines, bom, final_newline))
        resp = s3_handler({"source": {"uri": "s3://data/in.jsonl"}}, lambda_context)
    assert resp["items"] == len(lines) == resp["succeeded"] + resp["failed"]
    check_output(resp["results"], lines)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=lines_strategy(), bom=st.booleans())
def test_the_local_runner_accounts_for_every_line(model_root, tmp_path_factory, lines, bom):
    tmp = tmp_path_factory.mktemp("hostile")
    path = tmp / "in.jsonl"
    path.write_bytes(file_bytes(lines, bom, True))
    cfg = RunConfig("logreg", path, tmp / "out", batch_size=7, concurrency=2, model_dir=model_root, progress=False)
    result = run_local(cfg)
    out = [json.loads(x) for x in result.results_path.read_text(encoding="utf-8").split("\n")[:-1]]
    check_output(out, lines)
    s = result.summary
    assert s["items"] == len(lines) == s["results"] + s["errors"] and s["failed_batches"] == 0


def test_bom_and_line_numbers_from_one(model_root, tmp_path, lambda_context, monkeypatch):
    monkeypatch.setenv("MODEL_DIR", str(model_root))
    path = tmp_path / "bom.jsonl"
    path.write_bytes(storage.BOM + (GOOD[0] + "\n{broken\n" + GOOD[1] + "\n").encode())
    resp = create_handler("logreg")({"source": {"uri": str(path)}}, lambda_context)
    assert [r.get("id") for r in resp["results"]] == ["ok-0", None, "ok-1"]  # the BOM did not break line 1
    bad = resp["results"][1]
    assert bad["line"] == 2 and bad["error"]["message"].startswith("line 2:")


def test_deep_nesting_no_longer_aborts_the_run(model_root, tmp_path, capsys):
    from mlinfer.cli import main

    path = tmp_path / "deep.jsonl"
    path.write_text(GOOD[0] + "\n" + "[" * 100_000 + "]" * 100_000 + "\n" + GOOD[1] + "\n")
    code = main(["run", "--model", "logreg", "--input", str(path), "--output", str(tmp_path / "o"),
                 "--model-dir", str(model_root), "--quiet"])  # fmt: skip
    out = [json.loads(x) for x in (tmp_path / "o" / "results.jsonl").read_text().splitlines()]
    assert code == 3 and len(out) == 3 and out[1]["error"]["type"] == "InvalidJson" and out[1]["line"] == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Warning" not in captured.err


def test_gzip_input_runs_like_the_plain_file(model_root, tmp_path):
    import gzip

    plain = tmp_path / "in.jsonl"
    plain.write_text("\n".join(GOOD * 20) + "\n")
    packed = tmp_path / "in.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a = run_local(RunConfig("logreg", plain, tmp_path / "a", batch_size=9, model_dir=model_root, progress=False))
    b = run_local(RunConfig("logreg", packed, tmp_path / "b", batch_size=9, model_dir=model_root, progress=False))
    assert b.results_path.read_bytes() == a.results_path.read_bytes()
    assert b.summary["outcome"] == "complete" and b.summary["items"] == 40


def test_a_file_where_every_line_fails_is_not_a_success(model_root, tmp_path, capsys):
    from mlinfer.cli import main

    path: Path = tmp_path / "garbage.jsonl"
    path.write_bytes(b"\x1f\x8c not gzip, not json\nstill not json\n")
    code = main(["run", "--model", "logreg", "--input", str(path), "--output", str(tmp_path / "o"),
                 "--model-dir", str(model_root), "--quiet", "--json"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out)  # --json prints only JSON
    assert code == 1 and summary["status"] == "FAILED" and summary["outcome"] == "failed"
    assert summary["errors"] == summary["items"] == 2
