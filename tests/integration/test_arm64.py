"""arm64 images under emulation: build the scikit-learn functions (classifiers and clustering images) for
arm64 and answer their events with `sam local invoke` (qemu-user-static through binfmt_misc on an x86_64
machine).

Correctness only: timings under emulation say nothing about Graviton. Opt-in (``make test-arm64`` or
``MLINFER_ARM64=1``): building images under emulation takes minutes; skipped, with the reason, without
emulation. The ONNX Runtime families (BERT, ResNet) build for arm64 too, but ONNX Runtime's aarch64 build
dies with SIGSEGV under Debian bookworm's qemu-user 7.2 as soon as it runs a session (see docs/workflow.md):
they need a real arm64 machine to be checked.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .images import ENV, invoke_event, offline_artifacts, remove_built_images, template_for_tests
from .test_template import ROOT, sam_cli

pytestmark = [pytest.mark.container, pytest.mark.slow]
FUNCTIONS = {"LogisticRegressionFunction": "logreg", "KMeansFunction": "kmeans"}


def arm64_base() -> str:
    if os.environ.get("MLINFER_ARM64") != "1":
        pytest.skip("opt-in: MLINFER_ARM64=1 or make test-arm64 (builds the scikit-learn images under emulation)")
    proc = subprocess.run([str(ROOT / "tools" / "lambda-base-image"), "--arch", "arm64"],
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"no arm64 emulation here: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def arm64_template(request) -> Path:
    image = arm64_base()
    if sam_cli() is None:
        pytest.skip("AWS SAM CLI not installed (make install)")
    request.addfinalizer(remove_built_images)
    offline_artifacts()
    local = ROOT / "template.arm64.yaml"  # beside template.yaml: SAM resolves Dockerfile paths from it
    local.write_text(template_for_tests(image))
    request.addfinalizer(lambda: local.unlink(missing_ok=True))
    return local


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_arm64_function_answers_its_event(function, arm64_template):
    build_dir = ROOT / ".aws-sam" / f"arm64-{function}"
    overrides = ["--parameter-overrides", "Architecture=arm64"]
    proc = subprocess.run(
        [sam_cli(), "build", function, "--template-file", str(arm64_template), "--build-dir", str(build_dir),
         *overrides],
        cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=3600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _, _, log = invoke_event(function, FUNCTIONS[function], build_dir / "template.yaml", *overrides, timeout=1200)
    assert '"architecture":"arm64"' in log.replace(" ", "")  # the EMF dimension, from platform.machine()
