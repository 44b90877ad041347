"""The handler wrapper: event shapes, per-item errors, EMF metrics, cold/warm, typed batch errors."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from mlinfer.runtime.errors import InvalidEventError, ModelLoadError, SourceReadError, UnknownModelError
from mlinfer.runtime.handler import create_handler


def emf_blobs(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


@pytest.fixture()
def handler(use_models):
    """A fresh execution environment: new handler, and Powertools' process-wide cold-start flag reset."""
    from aws_lambda_powertools.metrics.provider.cold_start import reset_cold_start_flag

    reset_cold_start_flag()
    return create_handler("logreg")


def test_direct_items_and_emf(handler, lambda_context, capsys):
    capsys.readouterr()
    resp = handler(
        {"items": [{"id": "a", "text": "I am so happy today"}, {"id": "b", "text": "terrified"}]}, lambda_context
    )
    assert resp["items"] == 2 and resp["succeeded"] == 2 and resp["failed"] == 0
    assert [r["id"] for r in resp["results"]] == ["a", "b"]
    assert set(resp["results"][0]["result"]) == {"label", "score", "probabilities"}
    assert resp["coldStart"] is True and "model_load" in resp["timingsMs"]
    blobs = emf_blobs(capsys.readouterr().out)
    batch = next(b for b in blobs if "BatchSize" in b)
    assert batch["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MLInference"
    dims = batch["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
    assert {"model", "memory_mb", "architecture"} <= set(dims)
    assert batch["model"] == "logreg" and batch["memory_mb"] == "1024"
    assert batch["BatchSize"] == [2.0] and batch["ItemsProcessed"] == [2.0] and batch["ItemErrors"] == [0.0]
    assert batch["request_id"] == lambda_context.aws_request_id
    assert "ModelLoadTime" in batch and "InferenceTime" in batch
    assert any("ColdStart" in b for b in blobs)


def test_warm_invocation_has_no_load_time(handler, lambda_context, capsys):
    handler({"items": ["first"]}, lambda_context)
    capsys.readouterr()
    resp = handler({"items": ["second"]}, lambda_context)
    assert resp["coldStart"] is False and "model_load" not in resp["timingsMs"]
    blobs = emf_blobs(capsys.readouterr().out)
    assert not any("ColdStart" in b for b in blobs)
    assert not any("ModelLoadTime" in b for b in blobs)


def test_every_bad_item_is_accounted_for(handler, lambda_context):
    items = [
        {"id": 1, "text": "fine and happy"},
        {"id": 2, "text": ""},
        {"id": 3, "text": 42},
        {"id": 4, "text": "x" * 20_001},
        {"id": 5, "features": [1.0, 2.0]},
        {"id": 6},
        {"text": "no id"},
        7,
        {"id": 8, "text": "a", "features": [1]},
        "a bare string is a text",
    ]
    resp = handler({"items": items}, lambda_context)
    assert resp["items"] == len(items) == len(resp["results"])
    by_pos = resp["results"]
    kinds = [r.get("error", {}).get("type") for r in by_pos]
    assert kinds == [
        None, "EmptyText", "InvalidType", "TextTooLong", "WrongFeatureCount",
        "MissingInput", "MissingId", "InvalidItem", "AmbiguousItem", None,
    ]  # fmt: skip
    assert resp["failed"] == 8 and resp["succeeded"] == 2
    assert by_pos[9]["id"] == 9  # bare values are identified by position


def test_item_batcher_event_writes_to_output(handler, lambda_context, tmp_path):
    out = tmp_path / "batches" / "000004.jsonl"
    event = {"Items": [{"id": i, "text": f"text number {i} makes me happy"} for i in range(5)],
             "BatchInput": {"output": {"uri": str(out)}, "batch": 4}}  # fmt: skip
    resp = handler(event, lambda_context)
    assert resp["resultsUri"] == str(out) and "results" not in resp and resp["batch"] == 4
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == list(range(5))


def test_source_slice_local_file_with_bad_lines(handler, lambda_context, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "happy"}\nnot json\n{"id": "c", "text": "sad"}\n\n{"id": "e", "text": "ok"}\n')
    resp = handler({"source": {"uri": str(src), "offset": 1, "limit": 3}}, lambda_context)
    assert [r["id"] for r in resp["results"]] == [None, "c", None]
    assert [r.get("line") for r in resp["results"]] == [2, None, 4]  # lines without an id name their line (from 1)
    assert resp["results"][0]["error"]["type"] == "InvalidJson"
    assert resp["results"][2]["error"]["type"] == "InvalidJson"  # blank line


@mock_aws
def test_source_slice_on_s3_with_byte_range(handler, lambda_context):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="data")
    lines = [json.dumps({"id": i, "text": f"line {i} is joyful"}) + "\n" for i in range(10)]
    s3.put_object(Bucket="data", Key="in.jsonl", Body="".join(lines).encode())
    start = sum(len(x) for x in lines[:4])
    end = start + sum(len(x) for x in lines[4:7])
    event = {"source": {"uri": "s3://data/in.jsonl", "offset": 4, "limit": 3, "byteStart": start, "byteEnd": end},
             "output": {"uri": "s3://data/out/b.jsonl"}}  # fmt: skip
    resp = handler(event, lambda_context)
    assert resp["items"] == 3
    body = s3.get_object(Bucket="data", Key="out/b.jsonl")["Body"].read().decode()
    assert [json.loads(x)["id"] for x in body.splitlines()] == [4, 5, 6]


@mock_aws
def test_large_results_overflow_to_s3(handler, lambda_context, monkeypatch):
    import mlinfer.runtime.handler as h

    monkeypatch.setattr(h, "RESPONSE_LIMIT_BYTES", 200)
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="results")
    monkeypatch.setenv("RESULTS_BUCKET", "results")
    resp = handler({"items": [f"happy text {i}" for i in range(20)]}, lambda_context)
    assert resp["resultsUri"].startswith("s3://results/results/logreg/")
    assert "results" not in resp


@mock_aws
def test_missing_source_is_a_typed_batch_error(handler, lambda_context):
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="data")
    with pytest.raises(SourceReadError, match=r"cannot read s3://data/missing\.jsonl"):
        handler({"source": {"uri": "s3://data/missing.jsonl"}}, lambda_context)


def test_bad_events_and_models(handler, lambda_context):
    with pytest.raises(InvalidEventError):
        handler({"nothing": True}, lambda_context)
    with pytest.raises(UnknownModelError, match="serves 'logreg', not 'kmeans'"):
        handler({"items": [], "model": "kmeans"}, lambda_context)
    with pytest.raises(UnknownModelError, match="known models"):
        create_handler("nope")


def test_missing_artifact_is_a_typed_load_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    with pytest.raises(ModelLoadError, match="no artifact"):
        create_handler("svm")


def test_a_failing_item_does_not_fail_the_batch(handler, lambda_context, monkeypatch):
    adapter = handler.runtime.adapter
    real = adapter.predict

    def flaky(inputs, options=None):
        if any(v == "boom" for _, v in inputs):
            raise RuntimeError("model exploded")
        return real(inputs, options)

    monkeypatch.setattr(adapter, "predict", flaky)
    resp = handler({"items": ["happy", "boom", "sad"]}, lambda_context)
    assert [r.get("error", {}).get("type") for r in resp["results"]] == [None, "PredictionError", None]
    assert "model exploded" in resp["results"][1]["error"]["message"]


def test_threads_follow_memory(monkeypatch):
    from mlinfer.runtime.threads import lambda_cores, lambda_vcpus, thread_count

    monkeypatch.delenv("MLINFER_THREADS", raising=False)
    assert lambda_vcpus(1769) == 1.0 and lambda_vcpus(128) == pytest.approx(128 / 1769)
    assert lambda_vcpus(10240) == pytest.approx(10240 / 1769)  # 5.79 vCPUs' worth of time on 6 cores
    assert [lambda_cores(m) for m in (128, 1769, 1770, 3538, 10240)] == [1, 1, 2, 2, 6]
    assert thread_count(128) == 1 and thread_count(1769) == 1
    monkeypatch.setenv("MLINFER_THREADS", "3")
    assert thread_count(128) == 3
