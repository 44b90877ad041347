"""Sweeps for real: local workers in Lambda-like sandboxes, and the AWS path against moto."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from mlinfer.bench.collect import from_cloudwatch, from_local_run
from mlinfer.bench.limits import Sandbox
from mlinfer.bench.report import build_report
from mlinfer.bench.sweep import SweepConfig, run_sweep
from mlinfer.cli import main
from mlinfer.runtime.handler import create_handler

from ..aws_seam import LambdaSeam

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "logs"


@pytest.fixture()
def items_file(tmp_path, emotion_rows) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in emotion_rows[:300]))
    return path


def read(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def test_local_sweep_report_and_recommendation(items_file, model_root, tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["bench", "--model", "kmeans", "--input", str(items_file), "--output", str(out),
                 "--memory", "1024,1769", "--batch-size", "20,50", "--concurrency", "1,2", "--cold", "1",
                 "--warm", "2", "--items", "1000", "--model-dir", str(model_root), "--quiet"])  # fmt: skip
    assert code == 0
    rows = read(out / "invocations.csv")
    # 2 memory x 2 batch x 2 concurrency configurations x (1 cold + 2 warm) x 2 architectures priced
    assert len(rows) == 2 * 2 * 2 * 3 * 2
    assert all(r["status"] == "ok" for r in rows), [r["reason"] for r in rows if r["status"] != "ok"]
    cold = [r for r in rows if r["kind"] == "cold"]
    assert all(float(r["init_ms"]) > 0 and int(r["billed_ms"]) >= float(r["init_ms"]) for r in cold)
    assert {r["items"] for r in rows} == {"20", "50"}
    arm = {
        (r["memory_mb"], r["invocation"], r["batch_size"], r["concurrency"]): float(r["cost_usd"])
        for r in rows
        if r["architecture"] == "arm64"
    }
    x86 = {
        (r["memory_mb"], r["invocation"], r["batch_size"], r["concurrency"]): float(r["cost_usd"])
        for r in rows
        if r["architecture"] == "x86_64"
    }
    assert arm.keys() == x86.keys() and all(arm[k] < x86[k] for k in arm)  # same durations, cheaper rate
    report = (out / "report.md").read_text()
    assert (
        "Projection" in report and "Pareto front" in report and "## Recommendation for a job of 1,000 items" in report
    )
    for plot in ("memory", "batch", "concurrency", "architecture", "time_vs_cost"):
        assert (out / "plots" / f"{plot}.png").stat().st_size > 10_000
    assert "<table>" in (out / "report.html").read_text()
    assert (
        len(from_local_run(out)) == sum(1 for r in rows if r["architecture"] == "x86_64") + 2 * 2 * 3
    )  # + first calls

    capsys.readouterr()
    assert main(["recommend", "--sweep", str(out), "--items", "1000", "--strategy", "cost"]) == 0
    said = capsys.readouterr().out
    assert "recommended: " in said and "arm64" in said.split("recommended: ")[1].splitlines()[0]  # the cheaper rate
    assert "measured on this machine (CPU: " in said and "arm64 is priced from x86_64 durations measured here" in said
    assert main(["recommend", "--sweep", str(out), "--items", "1000", "--deadline", "0.001"]) == 1


def test_configuration_that_cannot_load_is_skipped(items_file, model_root, tmp_path):
    _, memory = Sandbox.probe(128)
    if not memory:
        pytest.skip("memory limits cannot be enforced on this machine (no writable cgroup memory controller)")
    big = tmp_path / "big.jsonl"  # batches of 30,000 texts: over 128 MB whatever data trained the model
    rows = [json.loads(x) for x in items_file.read_text().splitlines()]
    big.write_text("".join(json.dumps({**r, "id": f"{k}-{r['id']}"}) + "\n" for k in range(100) for r in rows))
    cfg = SweepConfig(model="random_forest", input=big, output=tmp_path / "s", memory_mb=[128], batch_sizes=[30_000],
                      cold=1, warm=1, timeout_s=30, model_dir=model_root, progress=False)  # fmt: skip
    rows = read(run_sweep(cfg))
    assert {r["status"] for r in rows} == {"skipped"}
    assert rows[0]["reason"].split(":")[0] in {"oom", "timeout"}, rows[0]["reason"]


@mock_aws(config={"lambda": {"use_docker": False}})
def test_aws_sweep_against_moto(items_file, use_models, tmp_path, monkeypatch):
    seam = LambdaSeam()
    seam.install(monkeypatch)
    seam.factories["mlinfer-kmeans"] = lambda: create_handler("kmeans")
    role = boto3.client("iam", region_name="us-east-1").create_role(RoleName="r", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    lam = boto3.client("lambda", region_name="us-east-1")
    lam.create_function(FunctionName="mlinfer-kmeans", Runtime="python3.12", Role=role, Handler="app.handler",
                        Code={"ZipFile": b"placeholder"}, MemorySize=1024,
                        Environment={"Variables": {"MODEL_NAME": "kmeans"}})  # fmt: skip
    cfg = SweepConfig(model="kmeans", input=items_file, output=tmp_path / "aws", memory_mb=[512, 2048],
                      batch_sizes=[50], concurrency=[2], cold=2, warm=4, progress=False)  # fmt: skip
    rows = read(run_sweep(cfg, function="mlinfer-kmeans"))
    assert len(rows) == 2 * (2 + 4)
    assert {r["target"] for r in rows} == {"aws"} and {r["status"] for r in rows} == {"ok"}
    for r in rows:
        assert (r["kind"] == "cold" and r["init_ms"]) or (r["kind"] == "warm" and not r["init_ms"])
        assert float(r["cost_usd"]) > 0 and r["items"] == "50"
    assert {r["memory_mb"] for r in rows} == {"512", "2048"}
    config = lam.get_function_configuration(FunctionName="mlinfer-kmeans")
    assert config["MemorySize"] == 1024 and "MLINFER_BENCH_NONCE" not in config["Environment"]["Variables"]  # restored
    assert build_report(tmp_path / "aws", items=5000).exists()


@mock_aws
def test_collect_from_cloudwatch_logs():
    logs = boto3.client("logs", region_name="us-east-1")
    logs.create_log_group(logGroupName="/aws/lambda/mlinfer-logreg")
    logs.create_log_stream(logGroupName="/aws/lambda/mlinfer-logreg", logStreamName="2026/11/20/[$LATEST]abc")
    lines = (FIXTURES / "cloudwatch-text.log").read_text().splitlines()
    now = int(time.time() * 1000) - 60_000  # CloudWatch rejects events from the future or > 14 days old
    events = [{"timestamp": now + i, "message": line} for i, line in enumerate(lines)]
    logs.put_log_events(
        logGroupName="/aws/lambda/mlinfer-logreg", logStreamName="2026/11/20/[$LATEST]abc", logEvents=events
    )
    invs = from_cloudwatch(
        ["/aws/lambda/mlinfer-logreg"], start=now / 1000 - 1, end=now / 1000 + 60, region="us-east-1"
    )
    assert [i.billed_ms for i in invs] == [1391, 220, 300000] and invs[0].items == 100
