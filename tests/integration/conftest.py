"""Fixtures shared by the tests that need real images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .images import build_all


@pytest.fixture(scope="session")
def built_template(request: pytest.FixtureRequest) -> Path:
    """Every function built once per session (the container and end-to-end tests share the images).
    ``MLINFER_BUILT_TEMPLATE`` names a build kept from an earlier session (``MLINFER_KEEP_IMAGES=1``)."""
    kept = os.environ.get("MLINFER_BUILT_TEMPLATE")
    return Path(kept) if kept else build_all(request)
