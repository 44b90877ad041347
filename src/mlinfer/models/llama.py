"""TinyLlama family (1.1B chat, the 4.6M-parameter v0): text generation with ONNX Runtime GenAI.

The artifact folder is what ``mlinfer.build.llama_export`` writes: ``model.onnx`` (int4 weights with int8
compute, or fp32 where the accuracy guard rejected int4), ``genai_config.json``, the tokenizer files and
``meta.json``. No torch, no transformers at run time.

Items carry ``prompt`` (or ``text``) and, optionally, their own ``max_new_tokens``, ``temperature``,
``top_p``, ``seed`` and ``stop`` (a string or a list of strings); the event's ``options`` set the same keys
for the whole batch. Decoding is greedy with a KV cache unless ``temperature`` > 0. Chat models get their
chat template; v0 completes plain text. A prompt that with ``max_new_tokens`` does not fit the context,
or a ``max_new_tokens`` above ``LLAMA_MAX_NEW_TOKENS``, is an error for that item only.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from mlinfer.models.base import ModelAdapter
from mlinfer.runtime import metrics as m
from mlinfer.runtime.errors import ModelLoadError
from mlinfer.runtime.items import ItemInputError, validate_text
from mlinfer.runtime.threads import thread_count

MAX_PROMPT_CHARS = 20_000
DEFAULT_NEW_TOKENS = 32
MAX_NEW_TOKENS = 256  # the configured maximum (LLAMA_MAX_NEW_TOKENS) unless the function sets another
MAX_STOP_STRINGS = 4
OPTION_KEYS = ("max_new_tokens", "temperature", "top_p", "seed", "stop")
# Prompts per generator call: decoding reads every weight once per step whatever the batch, so four prompts
# decode about 2.5x faster per token than one on one vCPU (benchmarks/llama_bench.py); LLAMA_BATCH_SIZE.
BATCH_SIZE = 4
MAX_PADDING = 0.15  # padded prompt tokens per call, as a share of its real ones


@dataclass(frozen=True)
class Prompt:
    """A validated prompt and the generation settings the item gave itself."""

    text: str
    settings: dict[str, Any] = field(default_factory=dict)


def check_settings(raw: Mapping[str, Any], max_new_tokens: int) -> dict[str, Any]:
    """The generation settings in ``raw`` (only the keys it has), or :class:`ItemInputError` naming the bad one."""

    def bad(key: str, rule: str) -> ItemInputError:
        return ItemInputError("InvalidOption", f"{key} must be {rule}, got {raw[key]!r}")

    def number(key: str) -> bool:
        return not isinstance(raw[key], bool) and isinstance(raw[key], int | float)

    out: dict[str, Any] = {}
    if "max_new_tokens" in raw:
        n = raw["max_new_tokens"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= max_new_tokens:
            raise bad("max_new_tokens", f"an integer 1..{max_new_tokens} (this function's maximum)")
        out["max_new_tokens"] = n
    if "temperature" in raw:
        if not number("temperature") or not 0 <= raw["temperature"] <= 5:
            raise bad("temperature", "a number 0..5 (0 is greedy)")
        out["temperature"] = float(raw["temperature"])
    if "top_p" in raw:
        if not number("top_p") or not 0 < raw["top_p"] <= 1:
            raise bad("top_p", "a number in (0, 1]")
        out["top_p"] = float(raw["top_p"])
    if "seed" in raw:
        if isinstance(raw["seed"], bool) or not isinstance(raw["seed"], int) or not 0 <= raw["seed"] < 2**31:
            raise bad("seed", "an integer 0..2**31-1")
        out["seed"] = raw["seed"]
    if "stop" in raw:
        stop = [raw["stop"]] if isinstance(raw["stop"], str) else raw["stop"]
        if (not isinstance(stop, list) or not 1 <= len(stop) <= MAX_STOP_STRINGS
                or not all(isinstance(s, str) and 0 < len(s) <= 200 for s in stop)):  # fmt: skip
            raise bad("stop", f"a string or a list of 1..{MAX_STOP_STRINGS} non-empty strings")
        out["stop"] = stop
    return out


@dataclass(eq=False)
class _Row:
    """One prompt in a generator call: its tokens, limits, what it has produced and when."""

    pos: int
    ids: list[int]
    max_new: int
    stops: list[str]
    settings: dict[str, Any]
    new: list[int] = field(default_factory=list)
    text: str = ""
    finish: str = "length"
    stream: Any = None
    started: float = 0.0
    first: float = 0.0
    finished: float = 0.0

    @property
    def sample(self) -> bool:
        return self.settings.get("temperature", 0.0) > 0

    def add(self, token: int, eos: set[int], now: float) -> bool:
        """Take the next token; True when this prompt is done (end of sequence, a stop string or its limit)."""
        self.first = self.first or now
        if token in eos:
            self.finish, self.finished = "eos", now
            return True
        self.new.append(token)
        self.text += self.stream.decode(token)
        hit = min((self.text.find(s) for s in self.stops if s in self.text), default=-1)
        if hit >= 0:
            self.text, self.finish, self.finished = self.text[:hit], "stop", now
            return True
        if len(self.new) >= self.max_new:
            self.finished = now
            return True
        return False

    def result(self) -> dict[str, Any]:
        decode_s = self.finished - self.first
        n = len(self.new)
        return {
            "text": self.text,
            "tokens": n,
            "prompt_tokens": len(self.ids),
            "finish": self.finish,
            "ttft_ms": round((self.first - self.started) * 1000, 2),
            "tokens_per_s": round((n - 1) / decode_s, 3) if n > 1 and decode_s > 0 else None,
        }


class LlamaAdapter(ModelAdapter):
    """Causal language model generation with ONNX Runtime GenAI, several prompts per generator call."""

    family = "llama"

    def __init__(self, name: str, model: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
        super().__init__(name)
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.chat_template: str | None = meta.get("chat_template")
        self.chat = bool(meta.get("chat", self.chat_template)) and self.chat_template is not None
        self.context_length = int(meta["context_length"])
        self.max_new_tokens = int(os.environ.get("LLAMA_MAX_NEW_TOKENS", MAX_NEW_TOKENS))
        self.eos = set(meta.get("eos_token_ids", []))
        self.pad = int(meta.get("pad_token_id", min(self.eos, default=0)))
        self.batch_size = int(os.environ.get("LLAMA_BATCH_SIZE", BATCH_SIZE))
        self._stats: dict[str, float] = {}

    @classmethod
    def load(cls, path: Path, name: str) -> Self:
        import onnxruntime_genai as og

        if not (path / "genai_config.json").exists():
            raise ModelLoadError(
                f"model {name!r}: {path} has no genai_config.json; convert the model first "
                f"(mlinfer export --model {name} --source <Hugging Face model folder>)"
            )
        meta_path = path / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        genai = json.loads((path / "genai_config.json").read_text())
        meta["context_length"] = genai["model"]["context_length"]
        eos = genai["model"].get("eos_token_id", [])
        meta["eos_token_ids"] = eos if isinstance(eos, list) else [eos]
        meta["pad_token_id"] = genai["model"].get("pad_token_id", meta["eos_token_ids"][0])
        template = path / "chat_template.jinja"
        if template.exists():
            meta["chat_template"] = template.read_text()
        elif (path / "tokenizer_config.json").exists():  # older folders keep it in tokenizer_config.json
            template_text = json.loads((path / "tokenizer_config.json").read_text()).get("chat_template")
            if template_text:
                meta["chat_template"] = template_text
        try:
            config = og.Config(str(path))
            threads = thread_count()
            options = {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
            config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
            model = og.Model(config)
            tokenizer = og.Tokenizer(model)
        except Exception as exc:  # onnxruntime-genai raises RuntimeError for unreadable folders
            raise ModelLoadError(f"model {name!r}: cannot load {path}: {exc}") from exc
        return cls(name, model, tokenizer, meta)

    # -- items ---------------------------------------------------------------------------------------
    def validate(self, item: Mapping[str, Any]) -> Prompt:
        field_name = "prompt" if "prompt" in item else "text"
        text = validate_text(item.get(field_name), field=field_name, max_chars=MAX_PROMPT_CHARS)
        return Prompt(text, check_settings({k: item[k] for k in OPTION_KEYS if k in item}, self.max_new_tokens))

    def prompt_ids(self, prompt: str) -> Any:
        if self.chat:
            messages = json.dumps([{"role": "user", "content": prompt}])
            prompt = self.tokenizer.apply_chat_template(
                messages, template_str=self.chat_template, add_generation_prompt=True
            )
        return self.tokenizer.encode(prompt)

    # -- generation ----------------------------------------------------------------------------------
    def predict(self, inputs: list[Prompt], options: Mapping[str, Any] | None = None) -> list[Any]:
        try:
            batch = check_settings({k: v for k, v in (options or {}).items() if k in OPTION_KEYS}, self.max_new_tokens)
        except ItemInputError as exc:
            return [exc] * len(inputs)
        out: list[Any] = [None] * len(inputs)
        groups: dict[tuple[Any, ...], list[_Row]] = {}
        for pos, p in enumerate(inputs):
            settings = {**batch, **p.settings}
            try:
                row = self._row(pos, p.text, settings)
            except ItemInputError as exc:
                out[pos] = exc
                continue
            key = tuple(settings.get(k) for k in ("temperature", "top_p", "seed")) if row.sample else ()
            groups.setdefault(key, []).append(row)
        for rows in groups.values():  # prompts that share sampling settings, shortest first (least padding)
            for chunk in self._chunks(sorted(rows, key=lambda r: len(r.ids))):
                for row in self._generate(chunk):
                    out[row.pos] = row.result()
        return out

    def generate(self, prompt: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One prompt's answer (see :meth:`predict` for the fields)."""
        result = self.predict([Prompt(prompt, dict(settings or {}))])[0]
        if isinstance(result, ItemInputError):
            raise result
        return result

    def _row(self, pos: int, prompt: str, settings: dict[str, Any]) -> _Row:
        ids = self.prompt_ids(prompt)
        max_new = settings.get("max_new_tokens", DEFAULT_NEW_TOKENS)
        if len(ids) + max_new > self.context_length:
            raise ItemInputError(
                "PromptTooLong",
                f"the prompt has {len(ids)} tokens; with max_new_tokens={max_new} that exceeds the model's "
                f"context of {self.context_length} tokens (shorten the prompt or lower max_new_tokens)",
            )
        return _Row(pos, list(ids), max_new, settings.get("stop", []), settings)

    def _chunks(self, rows: list[_Row]) -> list[list[_Row]]:
        """Up to ``batch_size`` prompts per generator call (``rows`` shortest first), each call within the
        context once padded and padding at most :data:`MAX_PADDING` of its prompt tokens: a padded token
        costs as much prompt processing as a real one, which a short prompt batched with a long one loses."""
        chunks: list[list[_Row]] = []
        for row in rows:
            last = chunks[-1] if chunks else []
            n, real = len(last) + 1, sum(len(r.ids) for r in last) + len(row.ids)
            if (last and len(last) < self.batch_size and n * len(row.ids) <= (1 + MAX_PADDING) * real
                    and len(row.ids) + max(r.max_new for r in [*last, row]) <= self.context_length):  # fmt: skip
                last.append(row)
            else:
                chunks.append([row])
        return chunks

    def _generate(self, rows: list[_Row]) -> list[_Row]:
        """Generate for ``rows`` in one generator: prompts right-padded into one prefill, then one decoding
        step per new token for all of them (each weight read once per step, whatever the batch)."""
        import numpy as np
        import onnxruntime_genai as og

        settings, width = rows[0].settings, max(len(r.ids) for r in rows)
        tokens = np.full((len(rows), width), self.pad, dtype=np.int32)
        for i, r in enumerate(rows):
            tokens[i, : len(r.ids)] = r.ids
        temperature = settings.get("temperature", 0.0)
        search: dict[str, Any] = {"max_length": width + max(r.max_new for r in rows), "do_sample": temperature > 0,
                                  "batch_size": len(rows)}  # fmt: skip
        if temperature > 0:
            search.update(temperature=temperature, top_p=settings.get("top_p", 1.0), top_k=0)
            if "seed" in settings:
                search["random_seed"] = settings["seed"]
        t0 = time.perf_counter()
        params = og.GeneratorParams(self.model)
        params.set_search_options(**search)
        generator = og.Generator(self.model, params)
        generator.append_tokens(tokens)  # prefill: every prompt in one pass
        for r in rows:
            r.stream, r.started = self.tokenizer.create_stream(), t0
        active = list(rows)
        while active and not generator.is_done():
            generator.generate_next_token()
            step = generator.get_next_tokens()
            now = time.perf_counter()
            for i, r in enumerate(rows):
                if r in active and r.add(int(step[i]), self.eos, now):
                    active.remove(r)
        end = time.perf_counter()
        for r in rows:
            r.finished = r.finished or end
            r.first = r.first or r.finished
        # Decoding of the call as a whole: its rows decode together, each step one read of the weights.
        span = max(r.finished for r in rows) - min(r.first for r in rows)
        for key, value in (("prompts", len(rows)), ("prompt_tokens", sum(len(r.ids) for r in rows)),
                           ("new_tokens", sum(len(r.new) for r in rows)),
                           ("ttft_s", sum(r.first - r.started for r in rows)), ("decode_s", span),
                           ("decoded", sum(max(0, len(r.new) - 1) for r in rows))):  # fmt: skip
            self._stats[key] = self._stats.get(key, 0) + value
        return rows

    def drain_metrics(self) -> list[tuple[str, str, float]]:
        s, self._stats = self._stats, {}
        if not s.get("prompts"):
            return []
        metrics = [(m.TOKENS_GENERATED, "Count", s["new_tokens"]), (m.PROMPT_TOKENS, "Count", s["prompt_tokens"]),
                   (m.TIME_TO_FIRST_TOKEN, "Milliseconds", 1000 * s["ttft_s"] / s["prompts"])]  # fmt: skip
        if s["decode_s"] > 0 and s["decoded"]:
            metrics.append((m.TOKENS_PER_SECOND, "Count/Second", s["decoded"] / s["decode_s"]))
        return metrics
