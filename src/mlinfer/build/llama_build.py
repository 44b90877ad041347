"""Build-time and development tool: a Llama-architecture model folder from a config, with random weights.

For tests (a tiny config) and benchmarks (TinyLlama-1.1B dimensions): the Hub is out of reach, and
generation speed does not depend on the weight values. The tokenizer is a byte-level BPE learnt from
the given texts; the folder is written with ``save_pretrained`` so that the real loading code reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINYLLAMA_1_1B = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
                  "num_key_value_heads": 4, "vocab_size": 32000, "max_position_embeddings": 2048}  # fmt: skip
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 512}  # fmt: skip
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


def build(out: Path, texts: list[str], dims: dict[str, int] = TINY, chat: bool = True, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tok = bpe_tokenizer(texts, vocab_size=min(1000, dims.get("vocab_size", 1000)))
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        **{"vocab_size": len(tok), **dims}, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id
    )
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out
