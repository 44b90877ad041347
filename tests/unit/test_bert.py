"""BERT family: the real export and loading code on a small DistilBERT trained here on real IMDb reviews."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from mlinfer.build.bert_export import export
from mlinfer.build.bert_train import train
from mlinfer.models.registry import load_model
from mlinfer.runtime.handler import create_handler

from ..conftest import SHARED_DATA, read_jsonl


@pytest.fixture(scope="session")
def reviews() -> list[dict]:
    """The 2,500 real IMDb reviews, or the project's own labelled review sample where ../shared is absent."""
    path = SHARED_DATA / "imdb_reviews.jsonl.gz"
    if path.exists():
        return read_jsonl(path)
    from mlinfer.data.sample import make_reviews

    return make_reviews(1000, seed=3)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, reviews) -> Path:
    out = tmp_path_factory.mktemp("tiny-distilbert")
    report = train(reviews[:600], out, steps=40, dim=32, layers=2, heads=2, max_length=128)
    assert report["test_items"] == 120
    return out


@pytest.fixture(scope="session")
def exported(tmp_path_factory, tiny_bert, reviews) -> Path:
    root = tmp_path_factory.mktemp("bert-models")
    export(str(tiny_bert), root / "distilbert", [r["text"] for r in reviews[600:800]], keep_candidates=True)
    return root


def test_adapter_results_are_well_formed(exported, reviews):
    model = load_model("distilbert", exported)
    texts = [r["text"] for r in reviews[:20]] + ["short", "x " * 5000]
    out = model.predict([model.validate({"text": t}) for t in texts])
    assert len(out) == len(texts)
    for r in out:
        assert r["label"] in {"POSITIVE", "NEGATIVE"} and 0.5 <= r["score"] <= 1
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert out[-1]["tokens"] == 512  # truncated at 512 tokens
    # Alone or in a batch: same label and tokens. With int8 weights, activation scales are computed per
    # sub-batch (dynamic quantisation), so scores may move in the 4th decimal with the batch's neighbours.
    alone = model.predict([model.validate({"text": texts[0]})])[0]
    assert alone["label"] == out[0]["label"] and alone["tokens"] == out[0]["tokens"]
    assert alone["score"] == pytest.approx(out[0]["score"], abs=1e-3)


def test_per_item_errors(exported, monkeypatch, lambda_context):
    monkeypatch.setenv("MODEL_DIR", str(exported))
    handler = create_handler("distilbert")
    items = [{"id": 1, "text": "great"}, {"id": 2, "text": ""}, {"id": 3, "text": 7}, {"id": 4, "text": "a" * 100_001}]
    resp = handler({"items": items}, lambda_context)
    assert [r.get("error", {}).get("type") for r in resp["results"]] == [
        None,
        "EmptyText",
        "InvalidType",
        "TextTooLong",
    ]


def test_fast_path_agrees_with_fp32_pytorch(exported, tiny_bert, reviews):
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = [r["text"] for r in reviews[800:900]]
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    ref_model = AutoModelForSequenceClassification.from_pretrained(tiny_bert).eval()
    chunks = []
    with torch.no_grad():
        for i in range(0, len(texts), 10):
            enc = tok(texts[i : i + 10], truncation=True, max_length=512, padding=True, return_tensors="pt")
            chunks.append(ref_model(**enc).logits.numpy())
    ref = np.concatenate(chunks)
    model = load_model("distilbert", exported)
    fast = model.logits(model.encode(texts))
    agreement = float(np.mean(fast.argmax(-1) == ref.argmax(-1)))
    assert agreement >= 0.99, agreement
    meta = json.loads((exported / "distilbert" / "meta.json").read_text())
    assert meta["variant"] in {"int8", "opt"} and meta["guard"][meta["variant"]]["agreement"] >= 0.99


def test_export_is_reproducible(tiny_bert, tmp_path, reviews):
    texts = [r["text"] for r in reviews[:50]]
    a = export(str(tiny_bert), tmp_path / "a", texts)
    b = export(str(tiny_bert), tmp_path / "b", texts)
    digest = [hashlib.sha256((tmp_path / d / "model.onnx").read_bytes()).hexdigest() for d in "ab"]
    assert digest[0] == digest[1] and a["variant"] == b["variant"]
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()


def test_guard_refuses_a_path_that_disagrees(tiny_bert, tmp_path):
    with pytest.raises(RuntimeError, match="no candidate passes the accuracy guard"):
        export(str(tiny_bert), tmp_path / "x", ["a fine film"] * 3, min_agreement=1.01)


def test_attention_is_fused(exported):
    import onnx

    graph = onnx.load(str(exported / "distilbert" / "candidates" / "opt.onnx")).graph
    fused = sum(1 for n in graph.node if n.op_type == "Attention")
    assert fused == 1  # one per layer of the 2-layer model but the last, which attends from [CLS] only


@pytest.mark.parametrize("arch", ["distilbert", "bert"])
def test_cls_only_last_layer_is_exact(arch, tmp_path, reviews):
    """The last layer computing [CLS] alone gives the model's own logits, in PyTorch and in the export."""
    import copy

    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DistilBertConfig,
        DistilBertForSequenceClassification,
    )

    from mlinfer.build.bert_export import _cls_only_last_layer
    from mlinfer.build.bert_train import train_tokenizer

    texts = [r["text"] for r in reviews[:40]]
    tok = train_tokenizer(texts, vocab_size=400)
    torch.manual_seed(0)
    if arch == "bert":
        config = BertConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_attention_heads=2,
            intermediate_size=64,
            num_hidden_layers=2,
            max_position_embeddings=512,
            pad_token_id=tok.pad_token_id,
        )
        model = BertForSequenceClassification(config).eval()
    else:
        config = DistilBertConfig(
            vocab_size=len(tok), dim=32, n_heads=2, hidden_dim=64, n_layers=2, pad_token_id=tok.pad_token_id
        )
        model = DistilBertForSequenceClassification(config).eval()
    enc = tok(texts[:6], truncation=True, max_length=512, padding=True, return_tensors="pt")
    changed = copy.deepcopy(model)
    assert _cls_only_last_layer(changed)
    with torch.no_grad():
        assert torch.allclose(model(**enc).logits, changed(**enc).logits, atol=1e-6)
    model.save_pretrained(tmp_path / "src")
    tok.save_pretrained(tmp_path / "src")
    meta = export(str(tmp_path / "src"), tmp_path / "out", texts[6:], quantize="none")
    assert meta["last_layer"] == "cls-only" and meta["variant"] == "opt"
    assert meta["guard"]["opt"]["agreement"] == 1.0 and meta["guard"]["opt"]["max_logit_diff"] < 1e-4


def test_sub_batches_keep_every_text_once_within_the_token_budget():
    from mlinfer.models.bert import sub_batches

    lengths = [512, 3, 300, 40, 40, 41, 7, 700, 1, 256, 256, 256, 256, 255]
    groups = sub_batches(lengths, budget=1024)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    flat = [lengths[i] for g in groups for i in g]
    assert flat == sorted(lengths)  # length order: each group pads to little more than its own texts
    for g in groups:
        assert len(g) == 1 or len(g) * max(lengths[i] for i in g) <= 1024
    assert [lengths[i] for i in groups[-1]] == [700] and [lengths[i] for i in groups[-2]] == [512]
    assert sub_batches([]) == []


def test_the_advice_for_a_missing_model_is_a_command_that_works(tiny_bert, tmp_path, capsys):
    """What `mlinfer run` says when the model is missing, run as written (the folder filled in)."""
    import shlex

    from mlinfer.cli import main
    from mlinfer.models.registry import missing_model_advice

    advice = missing_model_advice("distilbert", tmp_path / "models")
    command = advice.split("make it first: ")[1].replace("<Hugging Face model folder>", str(tiny_bert))
    argv = shlex.split(command)
    assert argv[0] == "mlinfer" and main(argv[1:]) == 0
    capsys.readouterr()
    model = load_model("distilbert", tmp_path / "models")
    assert model.predict([model.validate({"text": "a fine film"})])[0]["label"] in {"POSITIVE", "NEGATIVE"}
