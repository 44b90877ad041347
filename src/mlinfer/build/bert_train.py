"""Build-time and development tool (needs torch): a small BERT-family classifier trained on real text.

Used for the accuracy guard and the tests, where no pretrained weights can be downloaded: a WordPiece
vocabulary is learnt from the texts, a DistilBERT of the given size is trained on the labels, and the
result is saved with ``save_pretrained`` so that the real loading code reads it.

    python -m mlinfer.build.bert_train --data imdb_reviews.jsonl.gz --out /tmp/tiny-distilbert --steps 300
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from mlinfer.build.sklearn_train import read_jsonl

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer(texts: list[str], vocab_size: int = 4000) -> Any:
    """A BERT WordPiece tokenizer (fast) learnt from ``texts``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=512,
    )  # fmt: skip


def train(
    rows: list[dict[str, Any]],
    out: Path,
    steps: int = 300,
    dim: int = 128,
    layers: int = 2,
    heads: int = 2,
    max_length: int = 256,
    batch_size: int = 16,
    seed: int = 0,
) -> dict[str, Any]:
    """Train and save a DistilBERT classifier; return its held-out accuracy."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(seed)
    rng = random.Random(seed)
    rows = rows[:]
    rng.shuffle(rows)
    split = int(len(rows) * 0.8)
    train_rows, test_rows = rows[:split], rows[split:]
    tokenizer = train_tokenizer([r["text"] for r in train_rows])
    labels = sorted({int(r["label"]) for r in rows})
    id2label = {
        i: ("POSITIVE" if lab == 1 else "NEGATIVE") if labels == [0, 1] else str(lab) for i, lab in enumerate(labels)
    }
    config = DistilBertConfig(
        vocab_size=len(tokenizer), dim=dim, n_layers=layers, n_heads=heads, hidden_dim=4 * dim,
        max_position_embeddings=512, num_labels=len(labels), id2label=id2label,
        label2id={v: k for k, v in id2label.items()}, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    model = DistilBertForSequenceClassification(config)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
    model.train()
    for step in range(steps):
        batch = [train_rows[(step * batch_size + j) % len(train_rows)] for j in range(batch_size)]
        enc = tokenizer(
            [r["text"] for r in batch], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        )
        target = torch.tensor([labels.index(int(r["label"])) for r in batch])
        loss = model(**enc, labels=target).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test_rows), 32):
            batch = test_rows[i : i + 32]
            enc = tokenizer(
                [r["text"] for r in batch], truncation=True, max_length=512, padding=True, return_tensors="pt"
            )
            pred = model(**enc).logits.argmax(-1).tolist()
            correct += sum(p == labels.index(int(r["label"])) for p, r in zip(pred, batch, strict=True))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    accuracy = correct / max(1, len(test_rows))
    report = {"train_items": len(train_rows), "test_items": len(test_rows), "accuracy": accuracy, "steps": steps}
    (out / "training.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=2500)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args(argv)
    print(json.dumps(train(read_jsonl(args.data, args.limit), args.out, args.steps, args.dim, args.layers)))


if __name__ == "__main__":
    main()
