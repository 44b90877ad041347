"""INIT of every function family in Lambda's sandbox, against its budget (the cold-start table).

    .venv/bin/python benchmarks/cold_start.py                  # all families, 3 cold starts each
    .venv/bin/python benchmarks/cold_start.py --only logreg resnet50 --runs 5

INIT = the handler module's imports and the model load in a fresh worker process (what Lambda reports as
Init Duration), each worker confined to the CPU share and memory of ``--memory`` (cgroups, as ``mlinfer
run`` and ``mlinfer bench`` do; 1,769 MB = 1 vCPU). Models: the scikit-learn ones trained on the shipped
sample; DistilBERT, ResNet-50 and TinyLlama-1.1B (int4, ONNX Runtime GenAI) at full size, random weights
(load time depends on size, not values), exported by the real code. Then, for the slowest of each family,
where the time goes (``python -X importtime``, cumulative, the largest packages).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT

SKLEARN = ["kmeans", "gmm", "pca", "logreg", "svm", "random_forest", "naive_bayes"]
RESNET = ["resnet50", *[f"resnet50_stage{k}" for k in range(5)]]
#: Budgets (ms) at 1,769 MB.
BUDGET = {**dict.fromkeys(SKLEARN, 1000), "distilbert": 500, **dict.fromkeys(RESNET, 1000), "tinyllama_chat": 3000}


def prepare(work: Path, names: list[str]) -> Path:
    """A model folder holding every model asked for (built once per work folder)."""
    models = work / "models"
    todo = [n for n in names if n in SKLEARN and not (models / n).is_dir()]
    if todo:
        from mlinfer.build.sklearn_train import train_and_save
        from mlinfer.data import SAMPLE_PATH

        train_and_save(todo, SAMPLE_PATH, models)
    if any(n in RESNET for n in names) and not (models / "resnet50" / "stage4.onnx").exists():
        from mlinfer.build.resnet_export import build_random, export

        export(build_random(work / "resnet-source"), models / "resnet50")
    if "distilbert" in names and not (models / "distilbert" / "meta.json").exists():
        from bert_bench import build_full_size, reviews

        from mlinfer.build.bert_export import export as export_bert

        texts = [r["text"] for r in reviews(2500)]
        export_bert(str(build_full_size(work, texts)), models / "distilbert", texts[:8], min_agreement=0.0)
    if "tinyllama_chat" in names and not (models / "tinyllama_chat" / "meta.json").exists():
        from mlinfer.build.llama_build import TINYLLAMA_1_1B, build
        from mlinfer.build.llama_export import DEFAULT_GUARD_TEXTS
        from mlinfer.build.llama_export import export as export_llama

        source = build(work / "tinyllama-source", DEFAULT_GUARD_TEXTS * 20, dims=TINYLLAMA_1_1B)
        export_llama(str(source), models / "tinyllama_chat", check=False)  # random weights: no guard
    return models


def init_ms(name: str, models: Path, memory: int, runs: int, logs: Path) -> list[float]:
    from mlinfer.local.environment import Environment

    out = []
    for _ in range(runs):
        env = Environment(name, str(models), memory, logs)
        out.append(env.init_ms)
        env.close()
    return out


def import_costs(name: str, models: Path, top: int = 6) -> list[tuple[str, float]]:
    """The largest cumulative import times under the handler, per top-level package, in ms (nested packages
    are counted in their importer's figure too)."""
    code = f"from mlinfer.runtime.handler import create_handler; create_handler({name!r})"
    env = {"MODEL_DIR": str(models), "POWERTOOLS_TRACE_DISABLED": "true", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT / "src", timeout=300)  # fmt: skip
    costs: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        root = parts[2].strip().split(".")[0]  # a package's largest line: its root or its heaviest submodule
        costs[root] = max(costs.get(root, 0.0), int(parts[1]) / 1000)
    return sorted(costs.items(), key=lambda kv: -kv[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="models (default: every family)")
    parser.add_argument("--memory", type=int, default=1769)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mlinfer-bench" / "cold")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from mlinfer.bench.limits import Sandbox
    from mlinfer.bench.machine import describe

    print(describe(), flush=True)
    names = args.only or [*SKLEARN, "distilbert", *RESNET, "tinyllama_chat"]
    args.work.mkdir(parents=True, exist_ok=True)
    models = prepare(args.work, names)
    cpu, mem = Sandbox.probe(args.memory)
    print(f"INIT (import + model load) in a fresh worker, {args.memory} MB, median of {args.runs}; "
          f"limits: {'cgroup' if cpu and mem else 'NOT enforced (no cgroup rights)'}")  # fmt: skip
    print(f"{'function':18} {'median ms':>10} {'min ms':>8} {'budget ms':>10} {'':4}")
    rows = []
    for name in names:
        logs = args.work / "logs"
        logs.mkdir(exist_ok=True)
        times = init_ms(name, models, args.memory, args.runs, logs)
        med = statistics.median(times)
        row = {"model": name, "median_ms": round(med, 1), "min_ms": round(min(times), 1), "budget_ms": BUDGET[name]}
        rows.append(row)
        print(f"{name:18} {med:10.0f} {min(times):8.0f} {BUDGET[name]:10} {'ok' if med <= BUDGET[name] else 'OVER'}",
              flush=True)  # fmt: skip
    print("\nwhere INIT goes (python -X importtime, cumulative ms on this machine's full core, top packages):")
    for family in (SKLEARN, ["distilbert"], RESNET, ["tinyllama_chat"]):
        done = [r for r in rows if r["model"] in family]
        if done:
            worst = max(done, key=lambda r: r["median_ms"])["model"]
            costs = import_costs(worst, models)
            print(f"  {worst:16} " + ", ".join(f"{m} {ms:.0f}" for m, ms in costs))
            next(r for r in rows if r["model"] == worst)["imports_ms"] = dict(costs)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
