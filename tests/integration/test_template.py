"""The SAM template passes cfn-lint and `sam validate --lint`, and declares one function per model."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlinfer.models.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]


def sam_cli() -> str | None:
    local = ROOT / ".venv-sam" / "bin" / "sam"
    return str(local) if local.exists() else shutil.which("sam")


class _Loader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !Sub, ...) as plain values."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


_Loader.add_multi_constructor("!", _tag)


def load_template() -> dict:
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=_Loader)


def test_cfn_lint_clean():
    proc = subprocess.run(["cfn-lint", str(ROOT / "template.yaml")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sam_validate_lint():
    sam = sam_cli()
    if sam is None:
        pytest.skip("AWS SAM CLI not installed (make install puts it in .venv-sam)")
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    proc = subprocess.run([sam, "validate", "--lint"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def model_functions() -> dict[str, str]:
    """MODEL_NAME -> logical id of every model function in the template."""
    resources = load_template()["Resources"]
    return {
        res["Properties"]["Environment"]["Variables"]["MODEL_NAME"]: logical_id
        for logical_id, res in resources.items()
        if res["Type"] == "AWS::Serverless::Function" and "MODEL_NAME" in res["Properties"]["Environment"]["Variables"]
    }


def test_every_model_has_a_function_image_and_event():
    resources = load_template()["Resources"]
    functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    served = model_functions()
    for res in functions.values():
        props = res["Properties"]
        assert props["PackageType"] == "Image"
        meta = res["Metadata"]
        assert (ROOT / meta["Dockerfile"]).exists() and meta["DockerBuildArgs"]["BASE_IMAGE"]
        log_group = props["LoggingConfig"]["LogGroup"]["Ref"]  # the function's own log group, with retention
        assert resources[log_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    assert set(served) == set(MODELS)
    for name in served:
        assert (ROOT / "events" / f"{name}.json").exists()


def test_every_model_function_is_named_as_the_plan_step_finds_it():
    """The Plan step finds a model's function as ``FUNCTION_NAME_PREFIX + model``: no map to keep."""
    resources = load_template()["Resources"]
    prefix = resources["PlanFunction"]["Properties"]["Environment"]["Variables"]["FUNCTION_NAME_PREFIX"]["Sub"]
    assert prefix == "${AWS::StackName}-"
    for model, logical_id in model_functions().items():
        assert resources[logical_id]["Properties"]["FunctionName"] == {"Sub": prefix + model}


def substituted_definition(machine_id: str, child_execution: str = "EXPRESS") -> str:
    """The ASL as deployed: the state machine's DefinitionSubstitutions applied."""
    machine = load_template()["Resources"][machine_id]["Properties"]
    text = (ROOT / machine["DefinitionUri"]).read_text()
    placeholders = set(re.findall(r"\$\{(\w+)\}", text))
    assert placeholders == set(machine["DefinitionSubstitutions"]), "every placeholder is substituted"
    for key in placeholders:
        value = child_execution if key == "MapChildExecutionType" else "mlinfer-data"
        if key.endswith("FunctionArn"):
            value = f"arn:aws:lambda:us-east-1:123456789012:function:mlinfer-{key[: -len('FunctionArn')].lower()}"
        text = text.replace("${" + key + "}", value)
    return text


@pytest.mark.parametrize(
    ("machine_id", "child_execution"),
    [
        ("BatchInferenceStateMachine", "EXPRESS"),
        ("BatchInferenceStateMachine", "STANDARD"),
        ("ResNetPipelineStateMachine", "EXPRESS"),
    ],
)
def test_asl_validator_accepts_the_definition(machine_id, child_execution, tmp_path):
    validator = ROOT / ".tools" / "node" / "node_modules" / ".bin" / "asl-validator"
    if not validator.exists():
        pytest.skip("asl-validator not installed (make install puts it in .tools/node when npm is available)")
    path = tmp_path / "definition.asl.json"
    path.write_text(substituted_definition(machine_id, child_execution))
    proc = subprocess.run([str(validator), "--json-path", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_workflow_image_imports_without_ml_libraries():
    """Plan and Summarize run in an image with only Powertools, pydantic and boto3: their modules must not
    import numpy or a model library (a missing module fails every run at INIT)."""
    import subprocess
    import sys

    blocked = ("numpy", "scipy", "sklearn", "joblib", "onnxruntime", "torch", "transformers", "tokenizers", "PIL")
    code = (
        "import sys\n"
        f"for m in {blocked!r}: sys.modules[m] = None\n"
        "sys.path.insert(0, 'functions/workflow')\n"
        "import app\n"
        "assert callable(app.plan_handler) and callable(app.summarize_handler)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_runtime_never_imports_build_time_or_workflow_code():
    """What runs in a model function (mlinfer.runtime, mlinfer.models) imports nothing from mlinfer.build
    (training, export: libraries the images do not install) or mlinfer.workflow."""
    import ast

    for package in ("runtime", "models"):
        for path in (ROOT / "src" / "mlinfer" / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
                for name in names:
                    assert not name.startswith(("mlinfer.build", "mlinfer.workflow")), f"{path.name} imports {name}"


def test_the_dashboard_is_valid_json_over_the_metrics_the_functions_emit():
    """The dashboard body, with its substitutions made, parses as JSON; every metric it searches for is one
    the functions emit (mlinfer.runtime.metrics, Powertools' ColdStart) or Lambda's own Duration."""
    from mlinfer.runtime import metrics as m

    body, variables = load_template()["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Sub"]
    values = {"AWS::Region": "us-east-1", "AWS::StackName": "mlinfer", "MemorySize": "1024",
              "Architecture": "x86_64", "Price": "0.0000166667"}  # fmt: skip
    assert set(variables) == {"Price"}
    text = re.sub(r"\$\{([\w:]+)\}", lambda x: values[x.group(1)], body)
    widgets = json.loads(text)["widgets"]
    assert len(widgets) == 7
    emitted = {v for k, v in vars(m).items() if k.isupper() and isinstance(v, str)} | {"ColdStart", "Duration"}
    expressions = [line[0]["expression"] for w in widgets for line in w["properties"]["metrics"]]
    searched = {name for e in expressions for name in re.findall(r'MetricName="(\w+)"', e)}
    assert searched and searched <= emitted, searched - emitted
    # the dimension set Powertools writes (the three of mlinfer.runtime.metrics plus "service")
    assert "{MLInference,architecture,memory_mb,model,service}" in expressions[0]
    assert sorted([*m.DIMENSIONS, "service"]) == ["architecture", "memory_mb", "model", "service"]
