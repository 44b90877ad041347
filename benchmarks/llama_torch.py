"""Baselines for benchmarks/llama_bench.py: TinyLlama with transformers ``generate`` in PyTorch, fp32 or with
dynamically quantised int8 Linear layers (what the function served before ONNX Runtime GenAI).

Development dependencies only (torch, transformers); the function's image has neither.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any


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


class TorchLlama:
    """Greedy generation with a KV cache; ``quantize='int8'`` swaps every Linear for a dynamic int8 one."""

    def __init__(self, path: Path, quantize: str, threads: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        if quantize == "int8":  # in place: each fp32 Linear goes as its int8 twin replaces it
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model = torch.ao.quantization.quantize_dynamic(
                    self.model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True
                )

    def weight_bytes(self) -> int:
        """Bytes read per decoded token: every weight but the embedding table (one row of it is read)."""
        import torch

        emb = self.model.get_input_embeddings().weight
        total = sum(p.numel() * p.element_size() for p in self.model.parameters()) - emb.numel() * emb.element_size()
        for m in self.model.modules():  # int8 dynamic Linear keeps its packed weights outside parameters()
            if isinstance(m, torch.ao.nn.quantized.dynamic.Linear):
                w = m.weight()
                total += w.numel() * w.element_size()
        return total

    def generate(self, prompt: str, max_new_tokens: int) -> dict[str, Any]:
        import torch

        ids = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
        streamer = _FirstToken()
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                do_sample=False, use_cache=True, pad_token_id=self.tokenizer.eos_token_id, streamer=streamer,
            )  # fmt: skip
        elapsed = time.perf_counter() - t0
        new = out.shape[1] - ids.shape[1]
        ttft = (streamer.first - t0) if streamer.first else elapsed
        return {"tokens": new, "prompt_tokens": int(ids.shape[1]), "ttft_ms": ttft * 1000,
                "tokens_per_s": (new - 1) / (elapsed - ttft) if new > 1 else None}  # fmt: skip
