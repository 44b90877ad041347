"""Shared fixtures: a Lambda context, real data (../shared/data when present, else the shipped sample),
and scikit-learn models trained once per session on a small real sample."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MLINFER_SHARED_DATA", ROOT.parent / "shared" / "data"))
SKLEARN_MODELS = ["kmeans", "gmm", "pca", "logreg", "svm", "random_forest", "naive_bayes"]

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "mlinfer-test")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


@pytest.fixture(scope="session")
def emotion_rows() -> list[dict]:
    """Real emotion-labelled texts (34,792 in ../shared/data); the shipped sample where that is absent."""
    path = SHARED_DATA / "emotion.jsonl.gz"
    if path.exists():
        return read_jsonl(path)
    from mlinfer.data import SAMPLE_PATH

    return read_jsonl(SAMPLE_PATH)


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory, emotion_rows: list[dict]) -> Path:
    """The six scikit-learn models trained on the first 3,000 real texts, saved through the real code."""
    from mlinfer.build.sklearn_train import train_and_save

    root = tmp_path_factory.mktemp("models")
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in emotion_rows[:3000]))
    train_and_save(SKLEARN_MODELS, data, root)
    return root


@pytest.fixture()
def use_models(model_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODEL_DIR", str(model_root))
    return model_root


@pytest.fixture()
def lambda_context():
    from mlinfer.local.context import LocalContext

    return LocalContext(function_name="test-fn", memory_limit_in_mb=1024)


@pytest.fixture(scope="session")
def image_paths() -> list[Path]:
    """Real ImageNet photos: the 50 in ../shared/data/imagenet-samples, else the three shipped in events/."""
    shared = sorted((SHARED_DATA / "imagenet-samples").glob("*.JPEG"))
    return shared or sorted((ROOT / "events" / "images").glob("*.jpg"))


@pytest.fixture(scope="session")
def resnet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ResNet (ResNet-50's layout, fewer and narrower blocks, random weights) saved and split by
    the real export code into ``<root>/resnet50``: the whole graph and its five stages."""
    from mlinfer.build.resnet_export import build_random, export

    root = tmp_path_factory.mktemp("resnet")
    build_random(root / "source", full_size=False, num_labels=10)
    export(root / "source", root / "resnet50")
    return root


@pytest.fixture(scope="session")
def full_resnet() -> object:
    """ResNet-50 (full size, random weights) as a PyTorch model, saved and read back with from_pretrained."""
    import tempfile

    from transformers import ResNetForImageClassification

    from mlinfer.build.resnet_export import build_random

    with tempfile.TemporaryDirectory() as tmp:
        build_random(Path(tmp))
        return ResNetForImageClassification.from_pretrained(tmp).eval()
