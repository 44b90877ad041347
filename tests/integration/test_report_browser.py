"""The HTML report as a person sees it: opened in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mlinfer.bench.report import build_report
from mlinfer.bench.sweep import COLUMNS

from ..unit.test_bench_math import rows

pytestmark = pytest.mark.slow
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A report over a small sweep (three memory sizes, two architectures), written by the real code."""
    sweep = tmp_path_factory.mktemp("sweep")
    with (sweep / "invocations.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for n, (memory, scale) in enumerate([(512, 3.0), (1024, 1.7), (1769, 1.0)]):
            for arch in ("x86_64", "arm64"):
                for i, r in enumerate(rows(memory=memory, arch=arch, durations=[d * scale for d in (90, 100, 110)])):
                    writer.writerow({**r, "target": "local", "invocation": i, "request_id": f"{n}-{arch}-{i}"})
    build_report(sweep, items=10_000)
    return sweep / "report.html"


def test_the_html_report_is_one_self_contained_file(report):
    text = report.read_text()
    assert text.count("<img") >= 3 and text.count('src="data:image/png;base64,') == text.count("<img")
    assert "<table>" in text and "Pareto front" in text


@pytest.mark.skipif(BROWSER is None, reason="no chromium (apt-get install chromium) to render the report")
def test_the_html_report_renders_in_a_real_browser(report, tmp_path):
    from PIL import Image

    base = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,2600"]
    dom = subprocess.run([*base, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<table>") >= 3 and "Recommendation for a job of 10,000 items" in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run([*base, f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=120, check=True)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 2600)
    # The plots are drawn: many colours and a good share of non-white pixels (a page of text and empty
    # image boxes has a few greys only).
    pixels = np.asarray(image.resize((300, 650)), dtype=np.int16).reshape(-1, 3)
    coloured = int(np.sum(pixels.max(1) - pixels.min(1) > 40))
    distinct = len(np.unique(pixels, axis=0))
    assert coloured > 0.01 * len(pixels) and distinct > 200, (coloured, distinct)
