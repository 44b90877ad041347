"""TinyLlama family: the real loading and generation code on a tiny Llama built from a config."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from mlinfer.build.llama_build import build
from mlinfer.models.registry import load_model
from mlinfer.runtime.handler import create_handler

from ..conftest import SHARED_DATA, read_jsonl


@pytest.fixture(scope="session")
def prompts() -> list[str]:
    path = SHARED_DATA / "arc_challenge_test.jsonl.gz"
    if path.exists():
        return [r["prompt"] for r in read_jsonl(path, 300)]
    from mlinfer.data.sample import make_rows

    return [r["text"] for r in make_rows(300, seed=4)]


@pytest.fixture(scope="session")
def llama_root(tmp_path_factory, prompts):
    root = tmp_path_factory.mktemp("llama")
    build(root / "tinyllama_chat", prompts, chat=True)
    build(root / "tinyllama_v0", prompts, chat=False)
    return root


@pytest.mark.parametrize("name", ["tinyllama_chat", "tinyllama_v0"])
def test_generation_is_greedy_bounded_and_well_formed(name, llama_root, prompts):
    model = load_model(name, llama_root)
    inputs = [model.validate({"prompt": p}) for p in prompts[:2]]
    first = model.predict(inputs, {"max_new_tokens": 8})
    again = model.predict(inputs, {"max_new_tokens": 8})
    assert [r["text"] for r in first] == [r["text"] for r in again]  # greedy: deterministic
    for r in first:
        assert 1 <= r["tokens"] <= 8 and r["prompt_tokens"] > 0 and r["ttft_ms"] > 0
        assert r["finish"] in {"eos", "length"} and isinstance(r["text"], str)
    assert model.chat is (name == "tinyllama_chat")


def test_int8_option_quantises_linear_layers(llama_root, prompts, monkeypatch):
    import torch

    monkeypatch.setenv("LLAMA_QUANTIZE", "int8")
    model = load_model("tinyllama_v0", llama_root)
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.model.modules())
    out = model.predict([model.validate({"prompt": prompts[0]})], {"max_new_tokens": 4})
    assert 1 <= out[0]["tokens"] <= 4


def test_per_item_and_option_errors(llama_root, monkeypatch, lambda_context):
    monkeypatch.setenv("MODEL_DIR", str(llama_root))
    handler = create_handler("tinyllama_v0")
    resp = handler({"items": [{"id": 1, "prompt": "Question: why?"}, {"id": 2, "prompt": ""}, {"id": 3, "prompt": 5}],
                    "options": {"max_new_tokens": 3}}, lambda_context)  # fmt: skip
    kinds = [r.get("error", {}).get("type") for r in resp["results"]]
    assert kinds == [None, "EmptyText", "InvalidType"] and resp["results"][0]["result"]["tokens"] <= 3
    bad = handler({"items": [{"id": 1, "prompt": "hi"}], "options": {"max_new_tokens": 0}}, lambda_context)
    assert bad["results"][0]["error"]["type"] == "InvalidOption"


def test_the_advice_for_a_missing_model_is_a_command_that_works(llama_root, tmp_path, capsys):
    """What `mlinfer run` says when the model is missing, run as written (the folder filled in)."""
    import shlex

    from mlinfer.cli import main
    from mlinfer.models.registry import missing_model_advice

    advice = missing_model_advice("tinyllama_v0", tmp_path / "models")
    command = advice.split("make it first: ")[1].replace(
        "<Hugging Face model folder>", str(llama_root / "tinyllama_v0")
    )
    assert main(shlex.split(command)[1:]) == 0
    capsys.readouterr()
    model = load_model("tinyllama_v0", tmp_path / "models")
    assert model.predict([model.validate({"prompt": "Hello"})], {"max_new_tokens": 2})[0]["text"] is not None
