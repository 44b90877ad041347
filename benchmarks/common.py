"""What the benchmark scripts share: the package on the path and the real data sets in ../shared/data."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "src"))


def shared_rows(name: str, n: int | None = None) -> list[dict] | None:
    """The first ``n`` rows of ``../shared/data/<name>``, or None where the shared data is absent."""
    from mlinfer.build.sklearn_train import read_jsonl

    path = DATA / name
    return read_jsonl(path, n) if path.exists() else None
