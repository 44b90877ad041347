"""The SAM template passes cfn-lint and `sam validate --lint`, and declares one function per model."""

from __future__ import annotations

import os
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


def test_every_model_has_a_function_image_and_event():
    resources = load_template()["Resources"]
    functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    served = {}
    for logical_id, res in functions.items():
        props = res["Properties"]
        assert props["PackageType"] == "Image"
        meta = res["Metadata"]
        assert (ROOT / meta["Dockerfile"]).exists() and meta["DockerBuildArgs"]["BASE_IMAGE"]
        served[props["Environment"]["Variables"]["MODEL_NAME"]] = logical_id
        log_group = props["LoggingConfig"]["LogGroup"]["Ref"]  # the function's own log group, with retention
        assert resources[log_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    assert set(served) == set(MODELS)
    for name in served:
        assert (ROOT / "events" / f"{name}.json").exists()
