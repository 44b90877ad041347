"""The batch workflow's real ASL definition, executed by moto's Step Functions interpreter.

S3 is moto's; every Lambda task runs the project's real handlers in process (see tests/aws_seam.py).
Each case checks the outcome and that items in = results + errors.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlinfer.local.runner import RunConfig, run_local
from mlinfer.runtime.handler import create_handler
from mlinfer.workflow.handlers import plan_handler, summarize_handler

from ..aws_seam import Fault, LambdaSeam

ROOT = Path(__file__).resolve().parents[2]
ASL = ROOT / "statemachine" / "batch_inference.asl.json"
BUCKET = "mlinfer-data"
MODELS = ("kmeans", "logreg")
MOTO_CONFIG = {"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}


def definition(plan_arn: str, summarize_arn: str) -> str:
    """The ASL with the template's DefinitionSubstitutions applied (moto's interpreter knows only
    STANDARD child executions; the template defaults to EXPRESS)."""
    text = ASL.read_text()
    for key, value in {
        "PlanFunctionArn": plan_arn,
        "SummarizeFunctionArn": summarize_arn,
        "DataBucketName": BUCKET,
        "MapChildExecutionType": "STANDARD",
    }.items():
        text = text.replace("${" + key + "}", value)
    assert "${" not in text
    return text


class MotoAccount:
    """A moto account with the data bucket and a role; functions are answered by the seam's handlers."""

    machine: str

    def __init__(self, seam: LambdaSeam) -> None:
        self.seam = seam
        self.s3 = boto3.client("s3", region_name="us-east-1")
        self.sfn = boto3.client("stepfunctions", region_name="us-east-1")
        self.s3.create_bucket(Bucket=BUCKET)
        iam = boto3.client("iam", region_name="us-east-1")
        self.role = iam.create_role(RoleName="mlinfer", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        self.lam = boto3.client("lambda", region_name="us-east-1")

    def function(self, name: str, handler: Callable[[dict, Any], Any]) -> str:
        """Create function ``name`` (its invocations go to ``handler`` through the seam); return its ARN."""
        self.seam.handlers[name] = handler
        code = {"ZipFile": b"placeholder: invocations go through tests/aws_seam.py"}
        return self.lam.create_function(
            FunctionName=name, Runtime="python3.12", Role=self.role, Handler="app.handler", Code=code
        )["FunctionArn"]

    def state_machine(self, name: str, definition: str) -> str:
        self.machine = self.sfn.create_state_machine(name=name, definition=definition, roleArn=self.role)[
            "stateMachineArn"
        ]
        return self.machine

    def run(self, request: dict, timeout: float = 120) -> dict:
        name = f"run-{uuid.uuid4().hex[:12]}"
        started = self.sfn.start_execution(stateMachineArn=self.machine, name=name, input=json.dumps(request))
        arn = started["executionArn"]
        deadline = time.monotonic() + timeout
        while (desc := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution did not finish"
            time.sleep(0.1)
        return desc

    def read(self, uri: str) -> bytes:
        bucket, key = uri[len("s3://") :].split("/", 1)
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()


class Stack(MotoAccount):
    """The bucket, the functions and the batch state machine of template.yaml."""

    def __init__(self, seam: LambdaSeam, models: tuple[str, ...] = MODELS) -> None:
        super().__init__(seam)
        plan_arn = self.function("mlinfer-plan", plan_handler)
        summarize_arn = self.function("mlinfer-summarize", summarize_handler)
        for model in models:
            self.function(f"mlinfer-{model}", create_handler(model))
        self.state_machine("mlinfer-batch-inference", definition(plan_arn, summarize_arn))

    def put_input(self, key: str, lines: list[str]) -> str:
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=("\n".join(lines) + "\n").encode())
        return f"s3://{BUCKET}/{key}"

    def summary(self, name: str) -> dict:
        return json.loads(self.read(f"{out(name)}summary.json"))

    def results(self, name: str) -> list[dict]:
        return [json.loads(x) for x in self.read(f"{out(name)}results.jsonl").decode().splitlines()]


@pytest.fixture()
def stack(use_models, monkeypatch):
    monkeypatch.setenv("FUNCTION_NAME_PREFIX", "mlinfer-")  # the functions below are named mlinfer-<model>
    monkeypatch.setenv("MAP_CHILD_EXECUTION_TYPE", "STANDARD")
    seam = LambdaSeam()
    seam.install(monkeypatch)
    with mock_aws(config=MOTO_CONFIG):
        yield Stack(seam)


@pytest.fixture()
def texts(emotion_rows) -> list[str]:
    """1,000 real emotion texts (the shipped sample's 1,000 when ../shared is absent)."""
    rows = emotion_rows[-1000:]
    return [json.dumps({"id": r["id"], "text": r["text"]}) for r in rows]


def out(name: str) -> str:
    """Each run writes under its own output prefix."""
    return f"s3://{BUCKET}/out/{name}/"


def model_calls(seam: LambdaSeam, model: str) -> list[tuple[str, dict, str]]:
    return [c for c in seam.calls if c[0] == f"mlinfer-{model}"]


@pytest.mark.parametrize("model", MODELS)
def test_parallel_and_monolithic_agree_with_each_other_and_the_local_runner(
    stack, texts, model, model_root, tmp_path, monkeypatch
):
    uri = stack.put_input("in/emotion-1000.jsonl", texts)
    par = stack.run({"model": model, "input": uri, "output": out("par"), "batchSize": 100, "maxConcurrency": 4})
    assert par["status"] == "SUCCEEDED", par
    outcome = json.loads(par["output"])
    assert outcome["items"] == 1000 and outcome["results"] == 1000 and outcome["errors"] == 0
    assert len(model_calls(stack.seam, model)) == 10  # one invocation per batch

    import mlinfer.runtime.handler as h

    monkeypatch.setattr(h, "MAX_BATCHES_PER_INVOCATION", 3)  # force the cursor loop to go round 4 times
    before = len(model_calls(stack.seam, model))
    mono = stack.run({"model": model, "input": uri, "output": out("mono"), "batchSize": 100, "mode": "monolithic"})
    assert mono["status"] == "SUCCEEDED", mono
    mono_calls = model_calls(stack.seam, model)[before:]
    assert [c[1]["cursor"] for c in mono_calls] == [0, 3, 6, 9]

    par_results, mono_results = stack.results("par"), stack.results("mono")
    assert [r["id"] for r in par_results] == [json.loads(t)["id"] for t in texts]  # input order
    assert par_results == mono_results
    s = stack.summary("mono")
    assert s["mode"] == "monolithic" and s["batches"] == 10 and s["cost"]["lambda"]["invocations"] == 4
    assert s["cost"]["stepfunctions"]["transitions"] == 5 + 2 * 4 + 3

    local_in = tmp_path / "in.jsonl"
    local_in.write_text("\n".join(texts) + "\n")
    local = run_local(
        RunConfig(
            model, local_in, tmp_path / "local", batch_size=100, concurrency=2, model_dir=model_root, progress=False
        )
    )
    local_results = [json.loads(x) for x in local.results_path.read_text().splitlines()]
    assert local_results == par_results  # a local run and an AWS run compare line by line
    shared = ("items", "results", "errors", "error_types", "batches", "failed_batches", "status")
    assert {k: local.summary[k] for k in shared} == {k: stack.summary("par")[k] for k in shared}


def test_malformed_lines_become_per_item_errors(stack, texts):
    lines = [*texts[:150], "{not json", "", json.dumps({"text": "no id"}), json.dumps(["a list"]), *texts[150:196]]
    uri = stack.put_input("in/mixed.jsonl", lines)
    desc = stack.run({"model": "kmeans", "input": uri, "output": out("mixed"), "batchSize": 50})
    assert desc["status"] == "SUCCEEDED"
    s = stack.summary("mixed")
    assert s["items"] == 200 and s["results"] == 196 and s["errors"] == 4
    assert s["error_types"] == {"InvalidJson": 2, "MissingId": 1, "InvalidItem": 1}
    results = stack.results("mixed")
    assert [r.get("line") for r in results[150:154]] == [151, 152, 153, 154]  # counted from 1, as editors do


def test_failed_batch_above_tolerance_fails_the_run_but_loses_no_item(stack, texts):
    stack.seam.faults.append(Fault(lambda fn, ev: ev.get("batch") == 2, "error", times=99))
    uri = stack.put_input("in/e.jsonl", texts[:500])
    desc = stack.run(
        {"model": "logreg", "input": uri, "output": out("f"), "batchSize": 100, "toleratedFailurePercentage": 0}
    )
    assert desc["status"] == "FAILED" and desc["error"] == "BatchFailuresExceeded"
    s = stack.summary("f")
    assert s["status"] == "FAILED" and s["failed_batches"] == 1 and s["failed_batch_indexes"] == [2]
    assert s["items"] == 500 and s["results"] == 400 and s["errors"] == 100 and s["error_types"] == {"BatchFailed": 100}
    failed = stack.results("f")[200:300]
    assert [r["id"] for r in failed] == [json.loads(t)["id"] for t in texts[200:300]]  # ids kept
    assert "injected failure" in failed[0]["error"]["message"]


def test_failed_batch_below_tolerance_succeeds(stack, texts):
    stack.seam.faults.append(Fault(lambda fn, ev: ev.get("batch") == 4, "error", times=99))
    uri = stack.put_input("in/e.jsonl", texts[:1000])
    desc = stack.run({"model": "logreg", "input": uri, "batchSize": 100, "toleratedFailurePercentage": 10})
    assert desc["status"] == "SUCCEEDED"
    outcome = json.loads(desc["output"])
    assert outcome["failedBatches"] == 1 and outcome["items"] == 1000
    assert outcome["results"] + outcome["errors"] == 1000


def test_throttled_invocation_succeeds_on_retry(stack, texts):
    stack.seam.faults.append(Fault(lambda fn, ev: ev.get("batch") == 1, "throttle", times=1))
    uri = stack.put_input("in/e.jsonl", texts[:300])
    desc = stack.run({"model": "kmeans", "input": uri, "output": out("t"), "batchSize": 100})
    assert desc["status"] == "SUCCEEDED"
    batch1 = [c[2] for c in model_calls(stack.seam, "kmeans") if c[1].get("batch") == 1]
    assert batch1 == ["throttle", "ok"]
    assert stack.summary("t")["results"] == 300


@pytest.mark.parametrize(
    ("request_patch", "error", "fragment"),
    [
        ({"model": "nope"}, "UnknownModelError", "unknown model 'nope'"),
        ({"model": "svm"}, "UnknownModelError", "no function in this stack"),
        ({"input": f"s3://{BUCKET}/in/missing.jsonl"}, "SourceReadError", "missing.jsonl"),
        ({"batchSize": 0}, "InvalidRequestError", "batchSize"),
        ({"mode": "sideways"}, "InvalidRequestError", "mode"),
        ({"maxConcurrency": 20000}, "InvalidRequestError", "maxConcurrency"),
    ],
)
def test_bad_requests_fail_up_front_with_a_clear_error(stack, texts, request_patch, error, fragment):
    uri = stack.put_input("in/e.jsonl", texts[:10])
    desc = stack.run({"model": "kmeans", "input": uri, **request_patch})
    assert desc["status"] == "FAILED"
    assert desc["error"] == error and fragment in desc["cause"]
    assert not model_calls(stack.seam, "kmeans")  # nothing ran


def deploy_outputs(stack: Stack, name: str = "mlinfer") -> None:
    """A CloudFormation stack whose outputs point at the moto state machine and bucket (as sam deploy's would)."""
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {
            "BatchInferenceStateMachineArn": {"Value": stack.machine},
            "DataBucketName": {"Value": BUCKET},
        },
    }
    boto3.client("cloudformation", region_name="us-east-1").create_stack(
        StackName=name, TemplateBody=json.dumps(template)
    )


def test_cli_runs_on_the_deployed_stack(stack, texts, tmp_path, capsys):
    from mlinfer.cli import main

    deploy_outputs(stack)
    local_input = tmp_path / "texts.jsonl"
    local_input.write_text("\n".join(texts[:250]) + "\n")
    args = ["run", "--target", "aws", "--stack", "mlinfer", "--model", "logreg", "--input", str(local_input),
            "--batch-size", "100", "--concurrency", "3", "--quiet", "--region", "us-east-1"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "logreg (parallel, batch 100, concurrency 3" in out and "SUCCEEDED" in out
    assert "items 250: 250 results, 0 errors" in out
    uploaded = stack.s3.list_objects_v2(Bucket=BUCKET, Prefix="inputs/")["Contents"]
    assert len(uploaded) == 1 and uploaded[0]["Key"].endswith("texts.jsonl")

    assert main([*args[:8], f"s3://{BUCKET}/in/missing.jsonl", "--quiet", "--json"]) == 1
    failed = json.loads(capsys.readouterr().out)
    assert failed["status"] == "FAILED" and failed["error"] == "SourceReadError"


def test_cli_reports_a_missing_stack(stack, capsys):
    from mlinfer.cli import main

    assert main(["run", "--target", "aws", "--stack", "nope", "--model", "kmeans", "--input", "s3://b/k.jsonl"]) == 2
    assert "cannot describe stack 'nope'" in capsys.readouterr().err


def test_faults_on_aws_lose_no_item_and_their_retries_are_billed(stack, texts):
    """A third of the batches throttled on their first try, one batch whose function times out, one S3
    read that fails once: every item is accounted for, and the retries are in the run's cost."""
    stack.seam.timeout_s = 3.0
    first_try = lambda fn, ev: fn == "mlinfer-logreg" and ev.get("attempt") == 0  # noqa: E731
    stack.seam.faults += [
        Fault(lambda fn, ev: first_try(fn, ev) and ev["batch"] % 3 == 0, "throttle", times=99),
        Fault(lambda fn, ev: fn == "mlinfer-logreg" and ev.get("batch") == 4, "timeout", times=99),
        Fault(lambda fn, ev: first_try(fn, ev) and ev["batch"] == 5, "s3-read", times=1),
    ]
    uri = stack.put_input("in/faults.jsonl", texts[:900])
    desc = stack.run(
        {"model": "logreg", "input": uri, "output": out("faults"), "batchSize": 100, "toleratedFailurePercentage": 20}
    )
    assert desc["status"] == "SUCCEEDED", desc

    calls = [(c[1]["batch"], c[1]["attempt"], c[2]) for c in model_calls(stack.seam, "logreg")]
    assert sorted(c[:2] for c in calls if c[2] == "throttle") == [(0, 0), (3, 0), (6, 0)]
    assert [c for c in calls if c[0] == 4] == [(4, 0, "timeout")]  # a timeout would recur: not retried
    assert [c for c in calls if c[0] == 5] == [(5, 0, "error"), (5, 1, "ok")]  # SourceReadError, retried

    s = stack.summary("faults")
    assert s["items"] == 900 == s["results"] + s["errors"]
    assert s["errors"] == 100 and s["error_types"] == {"BatchFailed": 100} and s["failed_batch_indexes"] == [4]
    results = stack.results("faults")
    assert [r["id"] for r in results] == [json.loads(t)["id"] for t in texts[:900]]
    assert "Sandbox.Timedout" in results[400]["error"]["message"]
    assert s["retries"] == 3 + 1  # three throttles, one failed read
    lam = s["cost"]["lambda"]
    assert lam["invocations"] == 8 + 1 + 1  # eight finished batches, the failed read, the timeout
    assert lam["billed_ms"] >= 3000  # the timed-out try is billed for its whole timeout
    # S3: GETs of the input, plan.json, 8 slices, Summarize's 4 per finished batch and 3 for the failed one;
    # PUTs of plan.json, 3 map results, 8 results + 8 metadata, the failed read's note, the error record,
    # results.jsonl and summary.json.
    assert (s["cost"]["s3"]["gets"], s["cost"]["s3"]["puts"]) == (1 + 1 + 8 + 32 + 3, 1 + 3 + 16 + 1 + 1 + 2)
    by_service = s["cost"]["by_service"]
    assert sum(by_service.values()) == pytest.approx(s["cost"]["total_usd"]) and by_service["logs"] == 0.0
    # Standard children: InferBatch per batch, RecordBatchFailure once, and one transition per retry.
    assert s["cost"]["stepfunctions"]["transitions"] == 5 + 1 + 9 + 9 + 1 + 4
