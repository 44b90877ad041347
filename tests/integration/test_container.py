"""Real images: `sam build` every function (tests/integration/images.py), then `sam local invoke` each with
its event.
"""

from __future__ import annotations

import subprocess

import pytest

from mlinfer.models.registry import MODELS

from .images import BUILD_ID, base_image, invoke_event
from .test_template import ROOT, model_functions

pytestmark = [pytest.mark.container, pytest.mark.slow]


@pytest.mark.parametrize("model", sorted(MODELS))
def test_function_answers_its_event(model, built_template):
    response, items, log = invoke_event(model_functions()[model], model, built_template)
    assert response["failed"] == sum(1 for i in items if str(i["id"]).startswith(("bad-", "failed-")))
    assert "REPORT RequestId" in log and '"ItemsProcessed"' in log  # platform line and EMF


def test_real_builds_never_see_a_test_model(built_template):
    """The tests' models stay in .test-artifacts/; artifacts/ (what real builds read) holds none, and a build
    that is handed one without ALLOW_TEST_MODEL refuses it, naming the folder."""
    assert not list((ROOT / "artifacts").rglob("TEST_MODEL"))
    proc = subprocess.run(
        ["docker", "build", "--target", "export", "-f", "functions/transformers/Dockerfile", "--build-arg",
         f"BASE_IMAGE={base_image()}", "--build-arg", "ARTIFACTS=.test-artifacts", "--build-arg",
         f"BUILD_ID={BUILD_ID}", "-q", "."],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode != 0
    assert ".test-artifacts/distilbert is a test model" in proc.stdout + proc.stderr
