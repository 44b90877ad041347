"""TinyLlama family: real conversion (onnxruntime-genai's model builder), the real accuracy guard and the
real adapter and handler, on small Llamas built from a config (random) or trained here on real text."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime_genai")

from mlinfer.build.llama_build import TINY, TINYLLAMA_V0, build, train
from mlinfer.build.llama_export import MAX_PPL_RATIO, convert, export, guard
from mlinfer.models.registry import load_model
from mlinfer.runtime.handler import create_handler

from ..conftest import SHARED_DATA, read_jsonl


@pytest.fixture(scope="session")
def texts() -> list[str]:
    """Real reviews (train on the first 1,500, judge on others), or the shipped sample where ../shared is absent."""
    path = SHARED_DATA / "imdb_reviews.jsonl.gz"
    if path.exists():
        return [r["text"] for r in read_jsonl(path, 1600)]
    from mlinfer.data.sample import make_reviews

    return [r["text"] for r in make_reviews(1600, seed=5)]


@pytest.fixture(scope="session")
def trained(tmp_path_factory, texts):
    """A TinyLLama-v0-sized model (head size 4) trained briefly on real text: its answers mean something."""
    folder = tmp_path_factory.mktemp("llama-trained") / "hf"
    losses = train(folder, texts[:1500], dims=TINYLLAMA_V0, steps=150, batch=12)
    assert losses["last_loss"] < losses["first_loss"] - 1.0  # it learnt
    return folder


@pytest.fixture(scope="session")
def llama_root(tmp_path_factory, texts):
    """Both functions' folders as the images hold them: small random Llamas converted without the guard; the
    chat model's heads take ONNX Runtime's GroupQueryAttention, v0's (size 4, as TinyLLama-v0's) do not."""
    root = tmp_path_factory.mktemp("llama")
    v0 = {**TINYLLAMA_V0, "max_position_embeddings": 256}
    for name, chat, dims in (("tinyllama_chat", True, TINY), ("tinyllama_v0", False, v0)):
        source = root / f".{name}-hf"
        build(source, texts[:300], dims=dims, chat=chat)
        export(str(source), root / name, check=False)
    return root


def test_int4_passes_the_guard_on_a_trained_model(trained, texts, tmp_path):
    meta = export(str(trained), tmp_path / "out", texts[1500:1540])
    assert meta["precision"] == "int4" and meta["guard"]["int4"]["passed"]
    g = meta["guard"]["int4"]
    assert g["agreement"] >= 0.95 and g["perplexity_ratio"] <= MAX_PPL_RATIO and g["tokens"] > 1000
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["precision"] == "int4"


def test_a_broken_conversion_fails_the_guard(trained, texts, tmp_path):
    """The same builder on a model whose attention output weights were shuffled: the guard must refuse it."""
    import torch
    from transformers import AutoModelForCausalLM

    broken = tmp_path / "broken-hf"
    shutil.copytree(trained, broken)
    model = AutoModelForCausalLM.from_pretrained(broken)
    with torch.no_grad():
        for layer in model.model.layers:
            w = layer.self_attn.o_proj.weight
            w.copy_(w[torch.randperm(w.shape[0])])
    model.save_pretrained(broken)
    convert(broken, tmp_path / "onnx", "int4")
    result = guard(trained, tmp_path / "onnx", texts[1500:1520])
    assert not result["passed"]
    assert result["agreement"] < result["min_agreement"] or result["perplexity_ratio"] > result["max_ppl_ratio"]


def test_int4_rejected_by_the_guard_falls_back_to_fp32(trained, texts, tmp_path):
    meta = export(str(trained), tmp_path / "out", texts[1500:1510], max_ppl_ratio=1.0001)
    assert meta["precision"] == "fp32" and not meta["guard"]["int4"]["passed"]
    assert meta["guard"]["fp32"]["passed"] and meta["guard"]["fp32"]["agreement"] > 0.999


def test_no_conversion_passing_means_no_model(trained, texts, tmp_path):
    with pytest.raises(RuntimeError, match="accuracy guard"):
        export(str(trained), tmp_path / "out", texts[1500:1505], min_agreement=1.01)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["tinyllama_chat", "tinyllama_v0"])
def test_generation_is_greedy_bounded_and_well_formed(name, llama_root, texts):
    model = load_model(name, llama_root)
    inputs = [model.validate({"prompt": p[:200]}) for p in texts[:2]]  # within the tiny model's 256-token context
    first = model.predict(inputs, {"max_new_tokens": 8})
    again = model.predict(inputs, {"max_new_tokens": 8})
    assert [r["text"] for r in first] == [r["text"] for r in again]  # greedy: deterministic
    for r in first:
        assert 1 <= r["tokens"] <= 8 and r["prompt_tokens"] > 0 and r["ttft_ms"] > 0
        assert r["finish"] in {"eos", "length"} and isinstance(r["text"], str)
    assert model.chat is (name == "tinyllama_chat")
    names = {n for n, _, _ in model.drain_metrics()}
    assert {"TokensGenerated", "PromptTokens", "TimeToFirstToken"} <= names and model.drain_metrics() == []


def test_batched_generation_answers_as_one_prompt_at_a_time_does(llama_root, texts, monkeypatch):
    """Prompts of similar length share a generator call (right-padded); each answer must be unchanged, and a
    much shorter prompt gets a call of its own (padding it would cost more prompt processing than it saves).
    (On the chat model: batched and single calls differ by float rounding, ~1e-7, and v0's random weights
    leave near-ties that such rounding flips.)"""
    name = "tinyllama_chat"
    items = [{"prompt": t[:n]} for t, n in zip(texts[5:10], (120, 20, 126, 123, 130), strict=True)]
    answers, calls = {}, {}
    for size in ("1", "4"):
        monkeypatch.setenv("LLAMA_BATCH_SIZE", size)
        model = load_model(name, llama_root)
        generate, calls[size] = model._generate, []
        model._generate = lambda rows, g=generate, c=calls[size]: c.append(len(rows)) or g(rows)
        answers[size] = [(r["text"], r["tokens"]) for r in model.predict([model.validate(i) for i in items],
                                                                         {"max_new_tokens": 10})]  # fmt: skip
    assert answers["1"] == answers["4"]
    assert calls["1"] == [1] * 5 and sorted(calls["4"]) != [1] * 5 and 1 in calls["4"]


def test_the_chat_template_wraps_the_prompt(llama_root):
    chat, plain = load_model("tinyllama_chat", llama_root), load_model("tinyllama_v0", llama_root)
    assert len(chat.prompt_ids("Hello there")) > len(plain.prompt_ids("Hello there"))


def test_sampling_is_seeded_and_stop_strings_cut(llama_root):
    model = load_model("tinyllama_v0", llama_root)
    item = {"prompt": "The film was", "temperature": 1.5, "top_p": 0.95, "seed": 7, "max_new_tokens": 12}
    a, b = (model.predict([model.validate(item)])[0] for _ in range(2))
    assert a["text"] == b["text"] and a["tokens"] >= 1
    greedy = model.predict([model.validate({"prompt": "The film was", "max_new_tokens": 12})])[0]
    stop = greedy["text"][len(greedy["text"]) // 2 :][:2] if len(greedy["text"]) >= 2 else None
    if stop and stop.strip():
        cut = model.predict([model.validate({"prompt": "The film was", "max_new_tokens": 12, "stop": stop})])[0]
        assert cut["finish"] == "stop" and stop not in cut["text"] and greedy["text"].startswith(cut["text"])


def test_per_item_and_option_errors(llama_root, monkeypatch, lambda_context):
    monkeypatch.setenv("MODEL_DIR", str(llama_root))
    monkeypatch.setenv("LLAMA_MAX_NEW_TOKENS", "16")
    handler = create_handler("tinyllama_v0")
    long_prompt = " ".join(["word"] * 400)  # over the tiny model's 256-token context
    resp = handler({"items": [
        {"id": 1, "prompt": "Question: why?"}, {"id": 2, "prompt": ""}, {"id": 3, "prompt": 5},
        {"id": 4, "prompt": long_prompt}, {"id": 5, "prompt": "hi", "max_new_tokens": 17},
        {"id": 6, "prompt": "hi", "temperature": -1}, {"id": 7, "prompt": "hi", "stop": []},
    ], "options": {"max_new_tokens": 3}}, lambda_context)  # fmt: skip
    kinds = [r.get("error", {}).get("type") for r in resp["results"]]
    assert kinds == [None, "EmptyText", "InvalidType", "PromptTooLong", "InvalidOption", "InvalidOption",
                     "InvalidOption"]  # fmt: skip
    assert resp["results"][0]["result"]["tokens"] <= 3
    assert "256" in resp["results"][3]["error"]["message"]
    bad = handler({"items": [{"id": 1, "prompt": "hi"}], "options": {"max_new_tokens": 0}}, lambda_context)
    assert bad["results"][0]["error"]["type"] == "InvalidOption"


def test_a_folder_that_was_not_converted_says_how_to_convert_it(tmp_path, texts):
    from mlinfer.runtime.errors import ModelLoadError

    build(tmp_path / "tinyllama_v0", texts[:100], dims=TINY, chat=False)  # a Hugging Face folder, not converted
    with pytest.raises(ModelLoadError, match="mlinfer export --model tinyllama_v0"):
        load_model("tinyllama_v0", tmp_path)


def test_the_advice_for_a_missing_model_is_a_command_that_works(llama_root, tmp_path, capsys):
    """What `mlinfer run` says when the model is missing, run as written (the folder filled in)."""
    import shlex

    from mlinfer.cli import main
    from mlinfer.models.registry import missing_model_advice

    advice = missing_model_advice("tinyllama_v0", tmp_path / "models")
    command = advice.split("make it first: ")[1].replace(
        "<Hugging Face model folder>", str(llama_root / ".tinyllama_v0-hf")
    )
    assert main(shlex.split(command)[1:]) == 0  # random weights: int4 may fail the guard, fp32 passes
    capsys.readouterr()
    model = load_model("tinyllama_v0", tmp_path / "models")
    assert model.predict([model.validate({"prompt": "Hello"})], {"max_new_tokens": 2})[0]["text"] is not None
