"""ResNet-50 split across five functions: the pipeline's real ASL, executed by moto's Step Functions
interpreter, with the stage functions' real handlers behind the seam (tests/aws_seam.py); and the
data-parallel alternative, images fanned out by the batch workflow.

The model is a small ResNet of ResNet-50's layout (random weights) exported by the real code.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from moto import mock_aws

from mlinfer.runtime.events import parse_event
from mlinfer.runtime.handler import InferenceRuntime, create_handler

from ..aws_seam import Fault, LambdaSeam
from .test_workflow import BUCKET, MOTO_CONFIG, MotoAccount, Stack

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "statemachine" / "resnet_pipeline.asl.json"
PREFIX = f"s3://{BUCKET}/pipeline/run-1/"


class PipelineStack(MotoAccount):
    """The bucket, the five stage functions and the pipeline state machine of template.yaml, in moto."""

    def __init__(self, seam: LambdaSeam) -> None:
        super().__init__(seam)
        text = ASL.read_text()
        for k in range(5):
            arn = self.function(f"mlinfer-resnet50_stage{k}", create_handler(f"resnet50_stage{k}"))
            text = text.replace(f"${{ResNetStage{k}FunctionArn}}", arn)
        assert "${" not in text
        self.state_machine("resnet-pipeline", text)

    def keys(self, prefix: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for o in listed.get("Contents", [])]


@pytest.fixture()
def pipeline(resnet_root, monkeypatch):
    monkeypatch.setenv("MODEL_DIR", str(resnet_root))
    seam = LambdaSeam()
    seam.install(monkeypatch)
    with mock_aws(config=MOTO_CONFIG):
        yield PipelineStack(seam)


def image_items(stack_s3, image_paths: list[Path], n: int) -> list[dict]:
    """``n`` photos by S3 key (state payloads stay far under 256 KB), plus one small thumbnail inline (base64).
    Where ../shared is absent the three shipped photos repeat, each copy under a key and id of its own."""
    items = []
    for k in range(n):
        path = image_paths[k % len(image_paths)]
        name = path.name if k < len(image_paths) else f"{k}-{path.name}"
        stack_s3.put_object(Bucket=BUCKET, Key=f"images/{name}", Body=path.read_bytes())
        items.append({"id": Path(name).stem, "uri": f"s3://{BUCKET}/images/{name}"})
    thumb = sorted((ROOT / "events" / "images").glob("*.jpg"))[0]
    return [*items, {"id": f"inline-{thumb.stem}", "image": base64.b64encode(thumb.read_bytes()).decode()}]


def whole_model(items: list[dict]) -> dict:
    results, _ = InferenceRuntime("resnet50").run_batch(parse_event({"items": items}))
    return {r.id: r.to_line() for r in results}


def test_pipeline_runs_five_stages_and_equals_the_whole_model(pipeline, image_paths):
    photos = image_items(pipeline.s3, image_paths, 8)
    bad = [{"id": "bad-base64", "image": "%%%"}, {"id": "bad-key", "uri": f"s3://{BUCKET}/images/none.jpg"}]
    batches = [{"items": photos[0:4]}, {"items": photos[4:8] + bad[:1]}, {"items": photos[8:] + bad[1:]}]
    desc = pipeline.run({"batches": batches, "options": {"activations": PREFIX}, "maxConcurrency": 2})
    assert desc["status"] == "SUCCEEDED", desc
    out = json.loads(desc["output"])
    assert [b["batch"] for b in out["batches"]] == [0, 1, 2]
    assert sum(b["items"] for b in out["batches"]) == 11 and sum(b["failed"] for b in out["batches"]) == 2
    assert set(out["batches"][0]["timingsMs"]) == {f"stage{k}" for k in range(5)}

    lines = [json.loads(x) for b in out["batches"] for x in pipeline.read(b["resultsUri"]).decode().splitlines()]
    assert [x["id"] for x in lines] == [i["id"] for b in batches for i in b["items"]]  # every image, in order
    want = whole_model(photos + bad)
    for line in lines:
        if "error" in line:  # the reason found at stage 0 survives the four later stages
            assert line["error"] == want[line["id"]]["error"]
            continue
        assert [t["class"] for t in line["result"]["top5"]] == [t["class"] for t in want[line["id"]]["result"]["top5"]]
    for k in range(4):  # one activation object per batch at each stage boundary, none in the state
        assert len(pipeline.keys(f"pipeline/run-1/stage{k}/")) == 3
    assert len(desc["output"]) < 5_000

    from mlinfer.cost.stepfunctions import pipeline_transitions

    history = pipeline.sfn.get_execution_history(executionArn=desc["executionArn"], maxResults=1000)["events"]
    entered = [e for e in history if e["type"].endswith("StateEntered")]
    assert len(entered) == pipeline_transitions(3)  # what the cost model bills is what the interpreter ran


def test_a_throttled_stage_is_retried(pipeline, image_paths):
    pipeline.seam.faults.append(Fault(lambda fn, ev: fn.endswith("stage2"), "throttle", times=1))
    batches = [{"items": image_items(pipeline.s3, image_paths, 1)}]
    desc = pipeline.run({"batches": batches, "options": {"activations": PREFIX}, "maxConcurrency": 1})
    assert desc["status"] == "SUCCEEDED"
    assert [c[2] for c in pipeline.seam.calls if c[0].endswith("stage2")] == ["throttle", "ok"]


@pytest.mark.parametrize(
    "request_body",
    [
        {"batches": [{"items": []}], "maxConcurrency": 1},  # no place for activations
        {"options": {"activations": PREFIX}, "maxConcurrency": 1},  # no batches
        {"batches": [], "options": {"activations": PREFIX}},  # no concurrency bound
    ],
)
def test_an_incomplete_request_fails_up_front(pipeline, request_body):
    desc = pipeline.run(request_body)
    assert desc["status"] == "FAILED" and desc["error"] == "InvalidRequest"
    assert not pipeline.seam.calls


def test_data_parallel_fan_out_through_the_batch_workflow(resnet_root, image_paths, monkeypatch):
    """The parallelism ResNet-50 really offers: images across functions, each with the whole model."""
    monkeypatch.setenv("MODEL_DIR", str(resnet_root))
    monkeypatch.setenv("FUNCTION_NAME_PREFIX", "mlinfer-")  # the functions below are named mlinfer-<model>
    monkeypatch.setenv("MAP_CHILD_EXECUTION_TYPE", "STANDARD")
    seam = LambdaSeam()
    seam.install(monkeypatch)
    with mock_aws(config=MOTO_CONFIG):
        stack = Stack(seam, models=("resnet50",))
        items = [*image_items(stack.s3, image_paths, 9), {"id": "bad-image", "image": "AAAA"}]
        uri = stack.put_input("in/images.jsonl", [json.dumps(i) for i in items])
        request = {"model": "resnet50", "input": uri, "output": f"s3://{BUCKET}/out/img/", "batchSize": 3}
        desc = stack.run({**request, "maxConcurrency": 4})
        assert desc["status"] == "SUCCEEDED", desc
        summary = json.loads(stack.read(f"s3://{BUCKET}/out/img/summary.json"))
        assert summary["items"] == 11 and summary["results"] == 10 and summary["errors"] == 1
        assert summary["batches"] == 4 and len([c for c in seam.calls if c[0] == "mlinfer-resnet50"]) == 4
        results = [json.loads(x) for x in stack.read(f"s3://{BUCKET}/out/img/results.jsonl").decode().splitlines()]
        want = whole_model(items)
        assert [r["id"] for r in results] == [i["id"] for i in items]
        for r in results:  # the same answer as one function over all images (scores to batching noise)
            w = want[r["id"]]
            if "error" in w:
                assert r["error"] == w["error"]
                continue
            assert [t["class"] for t in r["result"]["top5"]] == [t["class"] for t in w["result"]["top5"]]
            assert r["result"]["top5"][0]["score"] == pytest.approx(w["result"]["top5"][0]["score"], abs=1e-4)
