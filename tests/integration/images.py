"""Real images for the container and end-to-end tests: a Lambda base image, the tests' own models, one
`sam build` of every function per test session, and the clean-up of exactly the images that build made.

Needs Docker and a Lambda-compatible base image: ``LAMBDA_BASE_IMAGE`` names one, or ``tools/lambda-base-image``
builds one offline. Tests that need them are skipped, with the reason, elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mlinfer.models.registry import MODELS

from .test_template import ROOT, sam_cli

ENV = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
#: Where the tests put their models: never artifacts/, which real builds read (the Dockerfiles' ARTIFACTS).
TEST_ARTIFACTS = ROOT / ".test-artifacts"
BUILD_ID = f"test-{uuid.uuid4().hex[:12]}"
KEEP = os.environ.get("MLINFER_KEEP_IMAGES") == "1"
BASE_TOOL = ROOT / "tools" / "lambda-base-image"


def base_image() -> str:
    if os.environ.get("LAMBDA_BASE_IMAGE"):
        return os.environ["LAMBDA_BASE_IMAGE"]
    if BASE_TOOL.exists():
        proc = subprocess.run([str(BASE_TOOL)], capture_output=True, text=True, timeout=900)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip().splitlines()[-1]
        pytest.skip(f"lambda-base-image failed: {proc.stderr.strip()[-300:]}")
    pytest.skip("no Lambda base image: set LAMBDA_BASE_IMAGE or run make base-image")


def offline_artifacts() -> None:
    """The Hub is out of reach here: give each BERT-family image a small model, trained on real reviews and
    exported through the real code, the TinyLlama images small random Llamas (the chat one converted here by
    the real builder code, v0 a Hugging Face folder that its image's build stage converts), and the ResNet
    image a full-size ResNet-50 with random weights split by the real code, in .test-artifacts/<model> (the
    Dockerfiles' offline path, with ARTIFACTS=.test-artifacts), each marked TEST_MODEL so that a real build
    refuses it; torch's CPU wheel (for that build stage) goes to .test-artifacts/wheels."""
    from mlinfer.build.bert_export import export
    from mlinfer.build.bert_train import train
    from mlinfer.build.llama_build import TINY, TINYLLAMA_V0, build
    from mlinfer.build.llama_export import export as export_llama
    from mlinfer.data.sample import make_reviews

    from ..conftest import SHARED_DATA, read_jsonl

    imdb = SHARED_DATA / "imdb_reviews.jsonl.gz"
    rows = read_jsonl(imdb, 600) if imdb.exists() else make_reviews(600, seed=3)
    for name, spec in MODELS.items():
        target = TEST_ARTIFACTS / name
        if spec.adapter.endswith("BertAdapter") and not (target / "model.onnx").exists():
            source = TEST_ARTIFACTS / f".{name}-source"
            train(rows, source, steps=30, dim=32, layers=2, heads=2, max_length=128)
            export(str(source), target, [r["text"] for r in rows[:100]])
        if name == "tinyllama_chat" and not (target / "genai_config.json").exists():
            build(TEST_ARTIFACTS / ".tinyllama_chat-source", [r["text"] for r in rows], dims=TINY)
            export_llama(str(TEST_ARTIFACTS / ".tinyllama_chat-source"), target, check=False)  # random: no guard
        if name == "tinyllama_v0" and not (target / "config.json").exists():  # head size 4, as TinyLLama-v0's
            build(target, [r["text"] for r in rows], dims={**TINYLLAMA_V0, "max_position_embeddings": 512}, chat=False)
    resnet = TEST_ARTIFACTS / "resnet50"
    if not (resnet / "stage4.onnx").exists():  # full size (the events carry ResNet-50's channel counts)
        from mlinfer.build.resnet_export import build_random
        from mlinfer.build.resnet_export import export as export_resnet

        export_resnet(build_random(TEST_ARTIFACTS / ".resnet50-source"), resnet)
    for folder in TEST_ARTIFACTS.iterdir():
        if folder.is_dir() and folder.name != "wheels" and not folder.name.startswith("."):
            (folder / "TEST_MODEL").write_text("made by tests/integration/test_container.py; never ship it\n")
    wheels = TEST_ARTIFACTS / "wheels"
    if not list(wheels.glob("torch-*.whl")):
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), "torch==2.13.0"]
        subprocess.run(pip, check=True, timeout=600)


def built_images() -> list[str]:
    """The images this module's builds made (functions, build stages, the emulator's images built on them):
    they carry its BUILD_ID label, so nothing anyone else built can be among them."""
    proc = subprocess.run(
        ["docker", "images", "-aq", "--no-trunc", "--filter", f"label=org.mlinfer.build-id={BUILD_ID}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return sorted(set(proc.stdout.split()))


def remove_built_images() -> None:
    """Remove the images this module built (several GB) and its test models; MLINFER_KEEP_IMAGES=1 keeps both
    (faster rebuilds from the layer cache)."""
    if KEEP:
        return
    for _ in range(3):  # an image goes once the images built on it have gone
        images = built_images()
        if not images:
            break
        subprocess.run(["docker", "rmi", "-f", *images], capture_output=True, timeout=600)
    shutil.rmtree(TEST_ARTIFACTS, ignore_errors=True)


def template_for_tests(image: str) -> str:
    """template.yaml as the tests build it: the local base image, the test models, this module's label."""
    extra = (f"        BASE_IMAGE: {image}\n        ARTIFACTS: .test-artifacts\n        ALLOW_TEST_MODEL: \"1\"\n"
             f"        BUILD_ID: {BUILD_ID}")  # fmt: skip
    return (ROOT / "template.yaml").read_text().replace("        BASE_IMAGE: public.ecr.aws/lambda/python:3.12", extra)


def build_all(request: pytest.FixtureRequest) -> Path:
    """`sam build` every function of template.yaml with the local base image and the tests' models; the
    images are removed when the session ends. Returns the built template."""
    sam = sam_cli()
    if sam is None:
        pytest.skip("AWS SAM CLI not installed (make install puts it in .venv-sam)")
    if shutil.which("docker") is None:
        pytest.skip("docker not installed")
    image = base_image()
    request.addfinalizer(remove_built_images)
    offline_artifacts()
    build_dir = ROOT / ".aws-sam" / "test-build"
    local = ROOT / "template.test.yaml"  # beside template.yaml: SAM resolves Dockerfile paths from it
    local.write_text(template_for_tests(image))
    request.addfinalizer(lambda: local.unlink(missing_ok=True))
    proc = subprocess.run(
        [sam, "build", "--template-file", str(local), "--build-dir", str(build_dir)],
        cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return build_dir / "template.yaml"


def invoke_event(
    function: str, model: str, template: Path, *extra: str, timeout: float = 600
) -> tuple[dict, list[dict], str]:
    """`sam local invoke` ``function`` with ``events/<model>.json``; check it answered every item, in order, as
    ``model``; return the response, the event's items and the container log (stderr)."""
    event = ROOT / "events" / f"{model}.json"
    proc = subprocess.run(
        [sam_cli(), "local", "invoke", function, "--event", str(event), "--template", str(template), *extra],
        cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    response = json.loads(proc.stdout.strip().splitlines()[-1])
    items = json.loads(event.read_text())["items"]
    assert response["model"] == model and response["items"] == len(items)
    assert [r["id"] for r in response["results"]] == [i["id"] for i in items]
    return response, items, proc.stderr
