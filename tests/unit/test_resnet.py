"""ResNet-50 whole and split: the real export and loading code, per-item errors, stage-chain equivalence."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from mlinfer.models import activations as act
from mlinfer.models.registry import load_model
from mlinfer.runtime.events import parse_event
from mlinfer.runtime.handler import InferenceRuntime

ROOT = Path(__file__).resolve().parents[2]


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def run(model: str, root: Path, monkeypatch: pytest.MonkeyPatch, items: list, options: dict | None = None) -> list:
    monkeypatch.setenv("MODEL_DIR", str(root))
    results, _ = InferenceRuntime(model).run_batch(parse_event({"items": items, "options": options or {}}))
    return [r.to_line() for r in results]


def same_top5(want: list[dict], got: list[dict], tol: float) -> bool:
    """The same five classes, in the same order except between classes whose scores differ by at most
    ``tol`` (a lossy encoding may swap near-ties, and nothing else)."""
    if {t["class"] for t in want} != {t["class"] for t in got}:
        return False
    score = {t["class"]: t["score"] for t in want}
    return all(abs(score[w["class"]] - score[g["class"]]) <= tol for w, g in zip(want, got, strict=True))


def chain(root: Path, monkeypatch: pytest.MonkeyPatch, items: list, options: dict) -> list:
    """The five stage functions in sequence, each fed the previous one's result lines as they are."""
    for k in range(5):
        items = run(f"resnet50_stage{k}", root, monkeypatch, items, options)
    return items


# -- activations encoding --------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", act.ENCODINGS)
def test_encoding_round_trip(encoding):
    x = np.maximum(np.random.default_rng(0).normal(size=(2, 64, 8, 8)), 0).astype(np.float32)
    y = act.decode(act.encode(x, encoding), encoding)
    assert y.dtype == np.float32 and y.shape == x.shape
    tol = {"fp32": 0, "int8": x.max() / 255 / 2 + 1e-6}.get(encoding, 1e-3)  # int8: half a step of the widest channel
    np.testing.assert_allclose(y, x, rtol=0 if encoding in ("fp32", "int8") else 1e-3, atol=tol)


def test_encoding_sizes_and_deterministic_keys():
    x = np.maximum(np.random.default_rng(0).normal(size=(4, 256, 14, 14)), 0).astype(np.float32)
    sizes = {e: len(act.encode(x, e)) for e in act.ENCODINGS}
    assert sizes["fp16"] < 0.51 * sizes["fp32"] and sizes["fp16+zlib"] < sizes["fp16"]  # ReLU zeros compress
    body = act.encode(x)
    assert act.batch_key("s3://b/run/", 1, body, "fp16+zlib") == act.batch_key("s3://b/run", 1, body, "fp16+zlib")
    assert act.batch_key("s3://b/run/", 1, body, "fp16+zlib").startswith("s3://b/run/stage1/")
    with pytest.raises(ValueError, match="unknown activation encoding"):
        act.encode(x, "int4")


@pytest.mark.parametrize(
    "ref, message",
    [
        ("s3://x", "must be an object"),
        ({"uri": "s3://b/k"}, "index"),
        ({"uri": "s3://b/k", "index": -1}, "index"),
        ({"data": 3}, "base64"),
        ({"data": "", "encoding": "bf16"}, "encoding"),
        ({}, "needs 'uri'"),
    ],
)
def test_malformed_references_are_refused(ref, message):
    with pytest.raises(ValueError, match=message):
        act.check_ref(ref)


# -- the adapter through the runtime -----------------------------------------------------------------
def test_whole_model_answers_top5_and_per_item_errors(resnet_root, image_paths, monkeypatch, tmp_path):
    grey = tmp_path / "grey.png"
    from PIL import Image

    Image.new("L", (300, 200), 128).save(grey)
    items = [
        {"id": "photo", "image": b64(image_paths[0])},
        {"id": "by-path", "uri": str(image_paths[1])},
        {"id": "greyscale", "uri": str(grey)},
        {"id": "bad-base64", "image": "***"},
        {"id": "bad-image", "image": base64.b64encode(b"not an image").decode()},
        {"id": "bad-missing", "uri": str(tmp_path / "nope.jpg")},
        {"id": "bad-field", "url": "http://x"},
        {"id": "bad-type", "image": 7},
        "bare string",
    ]
    out = run("resnet50", resnet_root, monkeypatch, items)
    assert [o["id"] for o in out] == [i["id"] if isinstance(i, dict) else pos for pos, i in enumerate(items)]
    for o in out[:3]:
        top5 = o["result"]["top5"]
        assert len(top5) == 5 and [t["score"] for t in top5] == sorted((t["score"] for t in top5), reverse=True)
        assert all(0 <= t["class"] < 10 and t["label"] == f"class_{t['class']}" for t in top5)
    errors = [o["error"]["type"] for o in out[3:]]
    assert errors == ["InvalidBase64", "InvalidImage", "ImageReadError", "MissingField", "InvalidType", "MissingField"]


def test_missing_artifact_is_a_clear_load_error(tmp_path):
    from mlinfer.runtime.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="resnet50_stage3"):
        load_model("resnet50_stage3", tmp_path)


def test_each_stage_loads_only_its_own_graph(resnet_root):
    import onnx

    def weights(path: Path) -> int:
        return sum(int(np.prod(t.dims)) for t in onnx.load(str(path)).graph.initializer)

    folder = resnet_root / "resnet50"
    stages = [weights(folder / f"stage{k}.onnx") for k in range(5)]
    assert sum(stages) == weights(folder / "model.onnx") and all(s > 0 for s in stages)
    for k in range(5):
        adapter = load_model(f"resnet50_stage{k}", resnet_root)
        assert adapter.stage == k and Path(adapter.session._model_path).name == f"stage{k}.onnx"


@pytest.mark.parametrize("encoding", ["fp32", "fp16", "fp16+zlib"])
def test_stage_chain_equals_whole_model(resnet_root, image_paths, monkeypatch, tmp_path, encoding):
    items = [{"id": p.name, "image": b64(p)} for p in image_paths[:8]] + [{"id": "bad", "image": "%%"}]
    whole = run("resnet50", resnet_root, monkeypatch, items)
    staged = chain(resnet_root, monkeypatch, items, {"activations": str(tmp_path / "acts"), "encoding": encoding})
    assert [o["id"] for o in staged] == [o["id"] for o in whole]
    tol = 1e-5 if encoding == "fp32" else 2e-3  # probabilities; fp16 carries ~1e-3 relative error
    for w, s in zip(whole[:-1], staged[:-1], strict=True):
        assert same_top5(w["result"]["top5"], s["result"]["top5"], tol)
        np.testing.assert_allclose(
            [t["score"] for t in s["result"]["top5"]], [t["score"] for t in w["result"]["top5"]], atol=tol
        )
    assert staged[-1]["error"]["type"] == whole[-1]["error"]["type"] == "InvalidBase64"  # carried through 5 stages
    assert len(list((tmp_path / "acts").rglob("*.npy*"))) == 4  # one object per stage boundary, per batch


def test_stage_refuses_bad_activations(resnet_root, monkeypatch, tmp_path):
    stem = np.zeros((16, 4, 4), np.float32)  # the small model's stage 1 takes 8 channels
    items = [
        {"id": "wrong-channels", "activation": act.inline_ref(stem)},
        {"id": "no-activation"},
        {"id": "missing-object", "activation": {"uri": str(tmp_path / "gone.npy.z"), "index": 0}},
        {"id": "garbage", "activation": {"data": base64.b64encode(b"xx").decode()}},
        {"id": "nan", "activation": act.inline_ref(np.full((8, 4, 4), np.nan, np.float32), "fp32")},
        {"id": "ok", "activation": act.inline_ref(np.ones((8, 4, 4), np.float32))},
    ]
    out = run("resnet50_stage1", resnet_root, monkeypatch, items)
    assert [o.get("error", {}).get("type") for o in out] == [
        "WrongShape", "MissingField", "ActivationReadError", "InvalidActivation", "NonFiniteValue", None,
    ]  # fmt: skip
    assert out[-1]["result"]["activation"]["shape"] == [16, 4, 4]


def test_shipped_events_have_the_shape_each_function_takes():
    channels = {1: 64, 2: 256, 3: 512, 4: 1024}
    for k, c in channels.items():
        items = json.loads((ROOT / "events" / f"resnet50_stage{k}.json").read_text())["items"]
        ref = act.check_ref(items[0]["activation"])
        assert act.decode(base64.b64decode(ref["data"]), ref["encoding"]).shape[0] == c


# -- full-size ResNet-50 (PyTorch): the partition is exact, the chain equals the model -----------------
def test_the_five_stages_hold_exactly_resnet50s_parameters(full_resnet):
    from mlinfer.build.resnet_export import stage_modules

    stages = stage_modules(full_resnet)
    ids = [{id(p) for p in s.parameters()} for s in stages]
    everything = {id(p) for p in full_resnet.parameters()}
    assert sum(len(s) for s in ids) == len(everything) and set().union(*ids) == everything  # disjoint, complete
    assert sum(p.numel() for p in full_resnet.parameters()) == 25_557_032


def test_full_size_chain_equals_whole_model_and_fp16_keeps_top5(full_resnet, image_paths):
    import torch

    from mlinfer.build.resnet_export import DEFAULT_PREPROCESSING, stage_modules
    from mlinfer.models.resnet import preprocess

    meta = DEFAULT_PREPROCESSING
    x = torch.from_numpy(np.stack([preprocess(p.read_bytes(), meta) for p in image_paths[:12]]))
    with torch.no_grad():
        want = full_resnet(pixel_values=x).logits.numpy()
        h, h16 = x, x
        for k, stage in enumerate(stage_modules(full_resnet)):
            h = stage(h)
            h16 = stage(h16)
            if k < 4:  # what crosses S3 between stage functions
                h16 = torch.from_numpy(act.decode(act.encode(h16.numpy(), "fp16"), "fp16"))
    np.testing.assert_allclose(h.numpy(), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    if len(x) >= 8:  # the check means something only if different photos get different answers
        assert len(set(np.argmax(want, axis=1))) > 1
    got = h16.numpy()
    err = float(np.abs(got - want).max())
    assert err < 0.01 * np.abs(want).max()

    def top5(order_by: np.ndarray, logits: np.ndarray) -> list[dict]:
        return [{"class": int(c), "score": float(logits[c])} for c in np.argsort(-order_by)[:5]]

    for w, g in zip(want, got, strict=True):
        assert same_top5(top5(w, w), top5(g, w), 2 * err)
