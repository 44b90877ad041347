"""ResNet in int8: the accuracy guard on a network trained here, and the functions serving int8 graphs."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mlinfer.build.resnet_quantize import (
    MIN_TOP1_AGREEMENT,
    QuantizationGuardError,
    guard,
    load_images,
    main,
    quantize_model_dir,
)
from mlinfer.models.registry import load_model

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "events" / "images"


@pytest.fixture(scope="module")
def guard_work(tmp_path_factory) -> Path:
    """Where the digits ResNet is trained and exported once for this module."""
    return tmp_path_factory.mktemp("int8-guard")


def test_the_guard_passes_int8_on_a_trained_network(guard_work):
    result = guard(guard_work)
    assert result["network"]["accuracy"] > 0.9  # the network's answers mean something
    assert result["whole"]["top1"] >= MIN_TOP1_AGREEMENT and result["stages"]["top1"] >= MIN_TOP1_AGREEMENT
    assert result["accuracy"]["int8"] >= result["accuracy"]["fp32"] - 0.01


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda d, x: quantize_model_dir(d, np.zeros_like(x)), id="calibrated-on-blank-images"),
        pytest.param(lambda d, x: quantize_model_dir(d, 20 * x), id="ranges-twenty-times-too-wide"),
    ],
)
def test_a_broken_quantisation_fails_the_guard(guard_work, broken):
    with pytest.raises(QuantizationGuardError, match="held-out top-1 answers"):
        guard(guard_work, quantize=broken)


def test_functions_serve_the_int8_graphs_the_build_kept(resnet_root, tmp_path, monkeypatch):
    model_dir = tmp_path / "resnet50"
    shutil.copytree(resnet_root / "resnet50", model_dir)
    meta = json.loads((model_dir / "meta.json").read_text())
    quantize_model_dir(model_dir, load_images(PHOTOS, meta))
    assert all((model_dir / f"stage{k}.int8.onnx").exists() for k in range(5))
    photos = [{"id": p.stem, "image": base64.b64encode(p.read_bytes()).decode()} for p in sorted(PHOTOS.glob("*.jpg"))]

    whole = load_model("resnet50", tmp_path)
    assert whole.meta["precision"] == "int8"
    out = whole.predict([whole.validate(x) for x in photos])
    assert [len(r["top5"]) for r in out] == [5] * len(photos)
    monkeypatch.setenv("RESNET_PRECISION", "fp32")
    assert load_model("resnet50", tmp_path).meta["precision"] == "fp32"
    monkeypatch.setenv("RESNET_PRECISION", "int4")
    with pytest.raises(Exception, match="RESNET_PRECISION must be int8 or fp32"):
        load_model("resnet50", tmp_path)


def test_the_build_step_keeps_int8_only_behind_the_guard(resnet_root, guard_work, tmp_path, capsys):
    model_dir = tmp_path / "resnet50"
    shutil.copytree(resnet_root / "resnet50", model_dir)
    assert main(["--model-dir", str(model_dir), "--images", str(PHOTOS), "--work", str(guard_work)]) == 0
    meta = json.loads((model_dir / "meta.json").read_text())
    assert meta["int8"]["guard"]["passed"] and meta["int8"]["calibration_images"] == 2 * len(list(PHOTOS.glob("*.jpg")))
    assert (model_dir / "model.int8.onnx").exists()


def test_int8_activation_encoding_is_a_quarter_of_fp32_within_half_a_step():
    from mlinfer.models import activations as act

    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(size=(2, 64, 28, 28)), 0).astype(np.float32)  # post-ReLU, as stages emit
    x[1, 3] = 7.0  # a constant channel
    body = act.encode(x, "int8")
    back = act.decode(body, "int8")
    assert back.shape == x.shape and back.dtype == np.float32
    assert len(body) < 0.26 * x.nbytes
    step = (x.max(axis=(2, 3), keepdims=True) - x.min(axis=(2, 3), keepdims=True)) / 255
    assert np.all(np.abs(back - x) <= step / 2 + 1e-6) and np.all(back[1, 3] == 7.0)
