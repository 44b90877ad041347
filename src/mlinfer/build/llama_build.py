"""Build-time and development tool: a Llama-architecture model folder from a config, random or trained.

For tests (a tiny config), benchmarks (TinyLlama-1.1B dimensions, random weights: generation speed does
not depend on the weight values) and the int4 accuracy guard (``train``: a TinyLLama-v0-sized model
trained on real text, whose next-token answers mean something). The tokenizer is a byte-level BPE learnt
from the given texts; the folder is written with ``save_pretrained`` so that the real loading code reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINYLLAMA_1_1B = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
                  "num_key_value_heads": 4, "vocab_size": 32000, "max_position_embeddings": 2048}  # fmt: skip
# TinyLLama-v0 (Maykeye/TinyLLama-v0): 4.6M parameters, head size 4.
TINYLLAMA_V0 = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 8, "num_attention_heads": 16,
                "num_key_value_heads": 16, "max_position_embeddings": 2048}  # fmt: skip
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 256}  # fmt: skip
CHAT_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}<|assistant|>\n"


def bpe_tokenizer(texts: list[str], vocab_size: int = 1000) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def _model(texts: list[str], dims: dict[str, int], chat: bool, seed: int) -> tuple[Any, Any]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tok = bpe_tokenizer(texts, vocab_size=min(1000, dims.get("vocab_size", 1000)))
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        **{"vocab_size": len(tok), **dims}, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id
    )
    return LlamaForCausalLM(config), tok


def build(out: Path, texts: list[str], dims: dict[str, int] = TINY, chat: bool = True, seed: int = 0) -> Path:
    """A model folder with random weights."""
    model, tok = _model(texts, dims, chat, seed)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def train(
    out: Path, texts: list[str], dims: dict[str, int] = TINYLLAMA_V0, steps: int = 300, seq_len: int = 128,
    batch: int = 16, lr: float = 3e-3, chat: bool = False, seed: int = 0,
) -> dict[str, float]:  # fmt: skip
    """Train a model on ``texts`` (next-token prediction, AdamW, cosine decay) and save it to ``out``;
    returns the first and last training losses."""
    import torch

    model, tok = _model(texts, dims, chat, seed)
    ids = [i for t in texts for i in [*tok(t).input_ids, tok.eos_token_id]]
    data = torch.tensor(ids[: len(ids) // seq_len * seq_len]).view(-1, seq_len)
    if len(data) < batch:
        raise ValueError(f"{len(ids)} tokens of text make fewer than {batch} sequences of {seq_len}")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in range(steps):
        rows = data[torch.randint(len(data), (batch,), generator=gen)]
        loss = model(input_ids=rows, labels=rows).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval().save_pretrained(out)
    tok.save_pretrained(out)
    return {"first_loss": losses[0], "last_loss": sum(losses[-10:]) / min(10, len(losses))}
