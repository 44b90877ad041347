"""Memory sweep of the six scikit-learn functions on the real emotion texts, in Lambda-like sandboxes.

    .venv/bin/python benchmarks/sklearn_sweep.py --out /tmp/sk-sweep            # run, then print the table
    .venv/bin/python benchmarks/sklearn_sweep.py --out /tmp/sk-sweep --table-only

Models are trained on the 34,792 texts of ../shared/data/emotion.jsonl.gz (the shipped sample where that
is absent); each configuration has 2 cold starts and 6 warm batches of 100 texts (mlinfer bench).
"""

from __future__ import annotations

import argparse
import gzip
import math
import shutil
from pathlib import Path

from common import DATA

MODELS = ["kmeans", "gmm", "pca", "logreg", "svm", "random_forest", "naive_bayes"]
MEMORY = [256, 512, 1024, 1769, 3008]


def prepare(out: Path) -> tuple[Path, Path]:
    from mlinfer.build.sklearn_train import train_and_save
    from mlinfer.data import SAMPLE_PATH

    data = DATA / "emotion.jsonl.gz"
    data = data if data.exists() else SAMPLE_PATH
    models = out / "models"
    if not all((models / m).is_dir() for m in MODELS):
        train_and_save(MODELS, data, models)
    plain = out / "input.jsonl"
    if not plain.exists():
        opener = gzip.open if data.suffix == ".gz" else open
        with opener(data, "rb") as src, plain.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return plain, models


def _cell(stats: object, field: str, fmt: str) -> str:
    if stats is None:
        return "not run"
    if stats.status != "ok":
        return f"skipped ({stats.reason.split(':')[0]})"
    value = getattr(stats, field)
    return "–" if math.isnan(value) else format(value, fmt)


def table(out: Path, items: int) -> None:
    from mlinfer.bench.recommend import all_options, recommend
    from mlinfer.bench.stats import read_rows, summarize

    print("| model | figure | " + " | ".join(f"{m} MB" for m in MEMORY) + " |")
    print("|---|---|" + "---|" * len(MEMORY))
    figures = [
        ("warm ms (batch of 100)", "warm_median_ms", ".1f"),
        ("cold INIT ms", "cold_init_ms", ".0f"),
        ("USD per 1,000 items", "cost_per_1000_items_usd", ".2e"),
    ]
    for model in MODELS:
        path = out / model / "invocations.csv"
        if not path.exists():
            continue
        stats = [s for s in summarize(read_rows(path)) if s.architecture == "x86_64"]
        by_mem = {s.memory_mb: s for s in stats}
        for label, field, fmt in figures:
            print(f"| {model} | {label} | " + " | ".join(_cell(by_mem.get(m), field, fmt) for m in MEMORY) + " |")
        pick = recommend(all_options(stats, items), "balanced")
        if pick:
            choice = f"{pick.label()}: {pick.time_s:.1f} s, ${pick.cost_usd:.5f}"
            print(f"| {model} | balanced pick, {items:,} items | {choice} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/sk-sweep"))
    parser.add_argument("--items", type=int, default=34_792)
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    from mlinfer.bench.machine import describe

    print(describe(), flush=True)
    if not args.table_only:
        from mlinfer.bench.sweep import SweepConfig, run_sweep

        data, models = prepare(args.out)
        for model in MODELS:
            cfg = SweepConfig(model=model, input=data, output=args.out / model, memory_mb=MEMORY, cold=2, warm=6,
                              timeout_s=60, model_dir=models, progress=False)  # fmt: skip
            run_sweep(cfg)
    table(args.out, args.items)


if __name__ == "__main__":
    main()
