"""Write the project's own small labelled text sample, so that image builds and the demo need no download.

Sentences are composed from phrase lists per emotion, with a fixed seed, so the file is reproducible:

    python -m mlinfer.data.sample            # rewrites src/mlinfer/data/sample.jsonl
    python -m mlinfer.data.sample --demo events/sample-input.jsonl --n 400
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from mlinfer.data import SAMPLE_PATH

EMOTIONS: dict[str, list[str]] = {
    "joy": [
        "so happy",
        "thrilled",
        "delighted",
        "overjoyed",
        "having a wonderful time",
        "grateful and glad",
        "smiling all day",
        "excited",
        "cheerful",
        "in a great mood",
    ],
    "sadness": [
        "so sad",
        "heartbroken",
        "feeling down",
        "miserable",
        "crying again",
        "lonely and blue",
        "disappointed",
        "gloomy",
        "missing them badly",
        "depressed",
    ],
    "anger": [
        "furious",
        "so angry",
        "fed up",
        "livid",
        "annoyed beyond words",
        "outraged",
        "mad at everyone",
        "irritated",
        "sick of this nonsense",
        "boiling with rage",
    ],
    "fear": [
        "scared",
        "terrified",
        "anxious",
        "afraid",
        "nervous about it",
        "panicking",
        "worried sick",
        "frightened",
        "shaking with fear",
        "dreading tomorrow",
    ],
    "surprise": [
        "shocked",
        "amazed",
        "astonished",
        "stunned",
        "totally unprepared",
        "speechless",
        "caught off guard",
        "surprised",
        "blown away",
        "in disbelief",
    ],
    "neutral": [
        "at the office",
        "on the bus",
        "reading the news",
        "cooking dinner",
        "checking email",
        "at the station",
        "doing laundry",
        "watching the weather report",
        "walking to work",
        "waiting in line",
    ],
}
SUBJECTS = ["I am", "I'm", "We are", "She is", "He is", "My friend is", "Everyone here is", "Honestly I am"]
CONTEXTS = [
    "today",
    "right now",
    "after the meeting",
    "this morning",
    "tonight",
    "since the call",
    "about the results",
    "at the news",
    "with the whole situation",
    "after what happened",
]
TAILS = ["", "", "!", "...", " lol", " again", " #mood", " for real"]


def make_rows(n: int, seed: int, labelled: bool = True) -> list[dict]:
    """``n`` rows with ``id``, ``text`` (and ``label``), balanced over the emotions."""
    rng = random.Random(seed)
    labels = list(EMOTIONS)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        text = f"{rng.choice(SUBJECTS)} {rng.choice(EMOTIONS[label])} {rng.choice(CONTEXTS)}{rng.choice(TAILS)}"
        if rng.random() < 0.3:  # a second clause of the same emotion adds vocabulary variety
            text += f", {rng.choice(EMOTIONS[label])}"
        row = {"id": f"sample-{i:05d}", "text": text}
        if labelled:
            row["label"] = label
        rows.append(row)
    rng.shuffle(rows)
    return rows


POSITIVE = [
    "a wonderful film",
    "brilliant acting",
    "a moving story",
    "beautifully shot",
    "great fun",
    "an outstanding cast",
    "a clever script",
    "one of the best this year",
    "pure joy",
    "a masterpiece",
]
NEGATIVE = [
    "a dull film",
    "wooden acting",
    "a predictable story",
    "badly shot",
    "a waste of time",
    "a miscast lead",
    "a lazy script",
    "one of the worst this year",
    "pure boredom",
    "a mess",
]
FILLER = [
    "The director",
    "Honestly, it was",
    "My friends and I agreed it was",
    "From start to finish,",
    "Despite the hype,",
    "As a fan of the genre, I found",
    "In the end it is",
    "Overall:",
]


def make_reviews(n: int, seed: int) -> list[dict]:
    """``n`` short labelled movie-review-like texts (``label`` 1 positive, 0 negative), balanced."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = POSITIVE if label else NEGATIVE
        text = " ".join(f"{rng.choice(FILLER)} {rng.choice(words)}." for _ in range(rng.randint(2, 6)))
        rows.append({"id": f"review-{i:05d}", "text": text, "label": label})
    rng.shuffle(rows)
    return rows


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the shipped sample data set")
    parser.add_argument("--demo", type=Path, help="write an unlabelled demo input here instead")
    parser.add_argument("--n", type=int, default=1200)
    args = parser.parse_args(argv)
    if args.demo:
        write(args.demo, make_rows(args.n, seed=2, labelled=False))
    else:
        write(SAMPLE_PATH, make_rows(args.n, seed=1))


if __name__ == "__main__":
    main()
