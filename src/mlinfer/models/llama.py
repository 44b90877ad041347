"""TinyLlama family (1.1B chat, the 4.6M-parameter v0): greedy text generation with a KV cache.

The artifact folder is a Hugging Face model folder (``config.json``, weights, tokenizer), read with
``from_pretrained``; ``LLAMA_QUANTIZE=int8`` (or ``meta.json``'s ``quantize``) swaps every Linear layer
for a dynamically quantised int8 one: decoding is memory-bandwidth bound, so a quarter of the weight
bytes per token is most of the speed-up. Chat models get their chat template; items are ``prompt``
(or ``text``); ``options.max_new_tokens`` (1..512, default 32) bounds each answer.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from mlinfer.models.base import ModelAdapter
from mlinfer.runtime.errors import ModelLoadError
from mlinfer.runtime.items import ItemInputError, validate_text
from mlinfer.runtime.threads import thread_count

MAX_PROMPT_CHARS = 20_000
DEFAULT_NEW_TOKENS = 32
MAX_NEW_TOKENS = 512


class _FirstToken:
    """A generation streamer that records when the first new token arrives (time to first token)."""

    def __init__(self) -> None:
        self.calls = 0
        self.first: float | None = None

    def put(self, value: Any) -> None:
        self.calls += 1
        if self.calls == 2 and self.first is None:  # the first call carries the prompt
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


class LlamaAdapter(ModelAdapter):
    """Causal language model generation, one prompt at a time, greedy."""

    family = "llama"

    def __init__(self, name: str, model: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
        super().__init__(name)
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.chat = bool(meta.get("chat", getattr(tokenizer, "chat_template", None)))
        self.max_prompt_tokens = int(meta.get("max_prompt_tokens", 1024))

    @classmethod
    def load(cls, path: Path, name: str) -> Self:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        meta_path = path / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        quantize = os.environ.get("LLAMA_QUANTIZE", meta.get("quantize", "none"))
        torch.set_num_threads(thread_count())
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        except OSError as exc:
            raise ModelLoadError(f"model {name!r}: cannot load {path}: {exc}") from exc
        if quantize == "int8":
            # In place: each fp32 Linear is dropped as its int8 twin replaces it, so both never coexist.
            with warnings.catch_warnings():  # torch's eager int8 path is deprecated; ONNX Runtime's replaces it
                warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.ao\.quantization")
                warnings.filterwarnings("ignore", category=UserWarning, message=r".*quantize_per_tensor")
                model = torch.ao.quantization.quantize_dynamic(
                    model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
                )
        elif quantize != "none":
            raise ModelLoadError(f"LLAMA_QUANTIZE must be none or int8, got {quantize!r}")
        meta["quantize"] = quantize
        return cls(name, model, tokenizer, meta)

    def validate(self, item: Mapping[str, Any]) -> str:
        field = "prompt" if "prompt" in item else "text"
        return validate_text(item.get(field), field=field, max_chars=MAX_PROMPT_CHARS)

    def _prompt_ids(self, prompt: str) -> Any:
        if self.chat and getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
            )["input_ids"]
        else:
            ids = self.tokenizer(prompt, return_tensors="pt").input_ids
        return ids[:, -self.max_prompt_tokens :]  # keep the end of an over-long prompt (the question)

    def generate(self, prompt: str, max_new_tokens: int) -> dict[str, Any]:
        import torch

        ids = self._prompt_ids(prompt)
        streamer = _FirstToken()
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
                use_cache=True, pad_token_id=pad, streamer=streamer,
            )  # fmt: skip
        elapsed = time.perf_counter() - t0
        new = out[0, ids.shape[1] :].tolist()
        ttft = (streamer.first - t0) if streamer.first else elapsed
        decode_s = elapsed - ttft
        return {
            "text": self.tokenizer.decode(new, skip_special_tokens=True),
            "tokens": len(new),
            "prompt_tokens": int(ids.shape[1]),
            "finish": "eos" if new and new[-1] == self.tokenizer.eos_token_id else "length",
            "ttft_ms": round(ttft * 1000, 2),
            "tokens_per_s": round((len(new) - 1) / decode_s, 3) if len(new) > 1 and decode_s > 0 else None,
        }

    def predict(self, inputs: list[str], options: Mapping[str, Any] | None = None) -> list[Any]:
        requested = (options or {}).get("max_new_tokens", self.meta.get("max_new_tokens", DEFAULT_NEW_TOKENS))
        if isinstance(requested, bool) or not isinstance(requested, int) or not 1 <= requested <= MAX_NEW_TOKENS:
            bad = ItemInputError(
                "InvalidOption", f"max_new_tokens must be an integer 1..{MAX_NEW_TOKENS}, got {requested!r}"
            )
            return [bad] * len(inputs)
        return [self.generate(p, requested) for p in inputs]
