"""The whole batch workflow through the real images on one machine (``make e2e``).

* Lambda: every function of the built template, served by ``sam local start-lambda`` (warm containers);
  each container reaches S3 through ``AWS_ENDPOINT_URL_S3`` in its environment, nothing else changed.
* S3: ``moto_server`` on this machine, reached by the containers through the Docker bridge gateway.
* Step Functions: moto's interpreter running ``statemachine/batch_inference.asl.json`` (the template's
  ``DefinitionSubstitutions`` applied), in this process; it invokes the functions through
  ``AWS_ENDPOINT_URL_LAMBDA``, as boto3 does for any client.

Each job's ``results.jsonl`` is compared line by line with a local run of the same model on the same input.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from mlinfer.local.runner import RunConfig, run_local

from ..conftest import SHARED_DATA, read_jsonl
from .images import ENV, TEST_ARTIFACTS
from .test_template import ROOT, sam_cli

pytestmark = [pytest.mark.e2e, pytest.mark.container, pytest.mark.slow]
ASL = ROOT / "statemachine" / "batch_inference.asl.json"
BUCKET = "mlinfer-e2e"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"port {port} not open after {timeout} s: {log.read_text()[-3000:]}")


def docker_gateway() -> str:
    """The host's address on Docker's default bridge, where containers reach services on this machine."""
    proc = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return proc.stdout.strip() or "172.17.0.1"


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # sam stops its containers on SIGINT
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def s3_port(tmp_path_factory) -> int:
    port, log = free_port(), tmp_path_factory.mktemp("moto") / "moto.log"
    server = Path(sys.executable).with_name("moto_server")
    with log.open("w") as fh:
        proc = subprocess.Popen([str(server), "-H", "0.0.0.0", "-p", str(port)], stdout=fh, stderr=fh)
    try:
        wait_for_port(port, proc, 60, log)
        yield port
    finally:
        stop(proc)


def e2e_template(built: Path, s3_url: str) -> Path:
    """The built template with the S3 endpoint in each function's environment (``--env-vars`` only overrides
    variables a template declares) and Standard child executions for the cost summary (moto's interpreter
    runs Map children as Standard executions)."""
    template = yaml.safe_load(built.read_text())
    for res in template["Resources"].values():
        if res["Type"] == "AWS::Serverless::Function":
            variables = res["Properties"].setdefault("Environment", {}).setdefault("Variables", {})
            variables["AWS_ENDPOINT_URL_S3"] = s3_url
            if "MAP_CHILD_EXECUTION_TYPE" in variables:
                variables["MAP_CHILD_EXECUTION_TYPE"] = "STANDARD"
    path = built.with_name("template.e2e.yaml")
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def lambda_port(built_template, s3_port, tmp_path_factory) -> int:
    template = e2e_template(built_template, f"http://{docker_gateway()}:{s3_port}")
    port, log = free_port(), tmp_path_factory.mktemp("sam") / "start-lambda.log"
    cmd = [sam_cli(), "local", "start-lambda", "--template", str(template), "--host", "127.0.0.1", "--port",
           str(port), "--warm-containers", "LAZY"]  # fmt: skip
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=fh, env={**ENV, **CREDENTIALS})
    try:
        wait_for_port(port, proc, 180, log)
        yield port
    finally:
        stop(proc)


@dataclass
class LocalCloud:
    """moto's S3 (server) and Step Functions (in process) with the functions served by sam local."""

    s3: Any
    sfn: Any
    machine: str = ""

    def put(self, key: str, lines: list[str]) -> str:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=("\n".join(lines) + "\n").encode())
        return f"s3://{BUCKET}/{key}"

    def read(self, uri: str) -> bytes:
        bucket, key = uri[len("s3://") :].split("/", 1)
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def run(self, request: dict, timeout: float = 600) -> tuple[dict, float]:
        """Start an execution (explicit name: moto needs one) and wait; fail on an error hidden in a payload."""
        t0 = time.perf_counter()
        name = f"e2e-{uuid.uuid4().hex[:12]}"
        arn = self.sfn.start_execution(stateMachineArn=self.machine, name=name, input=json.dumps(request))[
            "executionArn"
        ]
        deadline = time.monotonic() + timeout
        while (desc := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution did not finish"
            time.sleep(0.25)
        self.no_hidden_errors(arn)
        return desc, time.perf_counter() - t0

    def no_hidden_errors(self, arn: str) -> None:
        """sam local returns a function's exception as its payload, which moto's interpreter takes as the
        task's result (on AWS it is a task failure that Retry/Catch see): fail loudly instead."""
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        for event in events:
            details = event.get("taskSucceededEventDetails") or {}
            payload = json.loads(details.get("output") or "{}").get("Payload")
            if isinstance(payload, dict) and "errorType" in payload:
                raise AssertionError(f"a function failed and the emulation hid it: {payload}")


@pytest.fixture(scope="module")
def cloud(lambda_port, s3_port):
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{lambda_port}",
           "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{s3_port}"}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with mock_aws(config=MOTO_CONFIG):  # Step Functions and IAM in process; S3 and Lambda pass through
            s3, sfn = boto3.client("s3"), boto3.client("stepfunctions")
            s3.create_bucket(Bucket=BUCKET)
            role = boto3.client("iam").create_role(RoleName="e2e", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
            text = ASL.read_text()
            for key, value in {"PlanFunctionArn": "PlanFunction", "SummarizeFunctionArn": "SummarizeFunction",
                               "DataBucketName": BUCKET, "MapChildExecutionType": "STANDARD"}.items():  # fmt: skip
                text = text.replace("${" + key + "}", value)
            machine = sfn.create_state_machine(name="mlinfer-e2e", definition=text, roleArn=role)["stateMachineArn"]
            yield LocalCloud(s3, sfn, machine)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def local_models(tmp_path_factory) -> Path:
    """What the images hold: the classifiers trained at build time on the shipped sample (deterministic, the
    same scikit-learn), the BERT-family models from .test-artifacts."""
    from mlinfer.build.sklearn_train import train_and_save
    from mlinfer.data import SAMPLE_PATH

    root = tmp_path_factory.mktemp("e2e-models")
    train_and_save(["logreg"], SAMPLE_PATH, root)
    (root / "distilbert").symlink_to(TEST_ARTIFACTS / "distilbert")
    return root


def texts(name: str, n: int) -> list[str]:
    """``n`` real texts from ../shared/data, or the project's own samples where that is absent."""
    path = SHARED_DATA / name
    if path.exists():
        rows = read_jsonl(path, n)
    elif name.startswith("emotion"):
        from mlinfer.build.sklearn_train import read_jsonl as read_sample
        from mlinfer.data import SAMPLE_PATH

        rows = read_sample(SAMPLE_PATH, n)
    else:
        from mlinfer.data.sample import make_reviews

        rows = make_reviews(n, seed=5)
    return [json.dumps({"id": r["id"], "text": r["text"]}) for r in rows]


JOBS = [
    ("logreg", "emotion.jsonl.gz", 1000, "parallel", 100),
    ("logreg", "emotion.jsonl.gz", 1000, "monolithic", 100),
    ("distilbert", "imdb_reviews.jsonl.gz", 2000, "parallel", 250),
    ("distilbert", "imdb_reviews.jsonl.gz", 2000, "monolithic", 250),
    ("logreg", "bad-input", 0, "parallel", 4),
]


@pytest.mark.parametrize(("model", "data", "n", "mode", "batch"), JOBS, ids=[f"{j[0]}-{j[3]}-{j[1]}" for j in JOBS])
def test_job_through_the_images_agrees_with_a_local_run(cloud, local_models, tmp_path, model, data, n, mode, batch):
    lines = (ROOT / "events" / "bad-input.jsonl").read_text().splitlines() if data == "bad-input" else texts(data, n)
    uri = cloud.put(f"in/{model}-{mode}-{len(lines)}.jsonl", lines)
    out = f"s3://{BUCKET}/out/{uuid.uuid4().hex[:8]}/"
    request = {"model": model, "input": uri, "output": out, "batchSize": batch, "mode": mode, "maxConcurrency": 4}
    desc, wall = cloud.run(request)
    assert desc["status"] == "SUCCEEDED", desc
    summary = json.loads(cloud.read(out + "summary.json"))
    results = [json.loads(x) for x in cloud.read(out + "results.jsonl").decode().splitlines()]

    local_in = tmp_path / "in.jsonl"
    local_in.write_text("\n".join(lines) + "\n")
    local = run_local(RunConfig(model, local_in, tmp_path / "local", batch_size=batch, concurrency=2, mode=mode,
                                model_dir=local_models, progress=False))  # fmt: skip
    want = [json.loads(x) for x in local.results_path.read_text().splitlines()]
    assert len(results) == len(want) == len(lines) == summary["items"]
    assert [r.get("id") for r in results] == [w.get("id") for w in want]
    agree = sum(
        1
        for r, w in zip(results, want, strict=True)
        if ("error" in r) == ("error" in w) and r.get("result", {}).get("label") == w.get("result", {}).get("label")
    )
    assert agree == len(lines)
    assert [r["error"]["type"] for r in results if "error" in r] == [w["error"]["type"] for w in want if "error" in w]
    print(f"\ne2e {model} {mode} ({data}): items {summary['items']}, results {summary['results']}, errors "
          f"{summary['errors']}, agree with local {agree}/{len(lines)}, {wall:.1f} s, "
          f"cost ${summary['cost']['total_usd']:.6f} (Lambda: {summary['cost']['lambda']['invocations']}, "
          f"Step Functions transitions: {summary['cost']['stepfunctions']['transitions']})")  # fmt: skip


def test_resnet_pipeline_through_the_five_stage_images(cloud, image_paths, monkeypatch):
    """The pipeline state machine over 10 photos through the five stage images; top-5 as the whole model's."""
    from mlinfer.runtime.events import parse_event
    from mlinfer.runtime.handler import InferenceRuntime

    text = (ROOT / "statemachine" / "resnet_pipeline.asl.json").read_text()
    for k in range(5):
        text = text.replace(f"${{ResNetStage{k}FunctionArn}}", f"ResNetStage{k}Function")
    role = boto3.client("iam").create_role(RoleName="e2e-pipeline", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    machine = cloud.sfn.create_state_machine(name="resnet-e2e", definition=text, roleArn=role)["stateMachineArn"]
    photos = (image_paths * 10)[:10]
    items = []
    for n, path in enumerate(photos):
        cloud.s3.put_object(Bucket=BUCKET, Key=f"images/{n}-{path.name}", Body=path.read_bytes())
        items.append({"id": f"{n}-{path.stem}", "uri": f"s3://{BUCKET}/images/{n}-{path.name}"})
    batches = [{"items": items[:5]}, {"items": items[5:]}]
    request = {"batches": batches, "options": {"activations": f"s3://{BUCKET}/pipeline/e2e/"}, "maxConcurrency": 2}
    desc, wall = LocalCloud(cloud.s3, cloud.sfn, machine).run(request)
    assert desc["status"] == "SUCCEEDED", desc
    out = json.loads(desc["output"])
    lines = [json.loads(x) for b in out["batches"] for x in cloud.read(b["resultsUri"]).decode().splitlines()]
    assert [x["id"] for x in lines] == [i["id"] for i in items]

    monkeypatch.setenv("MODEL_DIR", str(TEST_ARTIFACTS))  # the weights the stage images hold
    inline = [
        {"id": i["id"], "image": base64.b64encode(p.read_bytes()).decode()} for i, p in zip(items, photos, strict=True)
    ]
    want, _ = InferenceRuntime("resnet50").run_batch(parse_event({"items": inline}))
    agree = sum(
        [t["class"] for t in line["result"]["top5"]] == [t["class"] for t in w.to_line()["result"]["top5"]]
        for line, w in zip(lines, want, strict=True)
    )
    assert agree == len(items)
    print(f"\ne2e resnet50 pipeline: images {len(items)}, results {sum('result' in x for x in lines)}, "
          f"top-5 as the whole model {agree}/{len(items)}, {wall:.1f} s")  # fmt: skip


def test_the_cli_runs_a_job_on_these_endpoints_unchanged(cloud, tmp_path, capsys):
    """`mlinfer run --target aws` as a user runs it after `sam deploy`: the stack's outputs name the state
    machine and bucket (a CloudFormation stack in moto stands for the deployed one); the endpoints come from
    the standard AWS_ENDPOINT_URL_* variables."""
    from mlinfer.cli import main

    outputs = {"BatchInferenceStateMachineArn": {"Value": cloud.machine}, "DataBucketName": {"Value": BUCKET}}
    template = {"Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}}, "Outputs": outputs}
    boto3.client("cloudformation").create_stack(StackName="mlinfer-e2e", TemplateBody=json.dumps(template))
    path = tmp_path / "texts.jsonl"
    path.write_text("\n".join(texts("emotion.jsonl.gz", 300)) + "\n")
    code = main(["run", "--target", "aws", "--stack", "mlinfer-e2e", "--model", "logreg", "--input", str(path),
                 "--batch-size", "100", "--concurrency", "3", "--quiet"])  # fmt: skip
    said = capsys.readouterr().out
    assert code == 0, said
    assert "SUCCEEDED" in said and "items 300: 300 results, 0 errors" in said
