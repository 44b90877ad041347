"""Peak memory and throughput of a local run as the input grows: memory must not grow with the file.

    .venv/bin/python benchmarks/memory_flat.py                       # 10,000 and 1,000,000 lines
    .venv/bin/python benchmarks/memory_flat.py --lines 10000 100000  # other sizes

Each size is one ``mlinfer run`` (logreg, short real emotion texts cycled, ids unique) in a process of its
own: the runner plans, dispatches, merges and summarises in that process, and the batches run in worker
processes. Peak RSS is the runner's own (``RUSAGE_SELF``), and the largest worker's (``invocations.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DATA, ROOT

#: ``mlinfer`` with the process's own peak RSS (kilobytes on Linux) printed last on stderr.
RUNNER = (
    "import resource, sys\n"
    "from mlinfer.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('runner-peak-kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def texts(n: int = 2000) -> list[str]:
    from mlinfer.build.sklearn_train import read_jsonl
    from mlinfer.data import SAMPLE_PATH

    path = DATA / "emotion.jsonl.gz"
    rows = read_jsonl(path if path.exists() else SAMPLE_PATH, n)
    return [r["text"][:80] for r in rows]


def write_input(path: Path, lines: int, pool: list[str]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(lines):
            fh.write(json.dumps({"id": i, "text": pool[i % len(pool)]}) + "\n")


def one_run(input_path: Path, out: Path, models: Path, batch: int, concurrency: int, memory: int) -> dict:
    """One ``mlinfer run``; the runner's own peak RSS (``RUSAGE_SELF``: not its workers')."""
    cmd = [sys.executable, "-c", RUNNER, "run", "--model", "logreg", "--input", str(input_path),
           "--output", str(out), "--batch-size", str(batch), "--concurrency", str(concurrency),
           "--memory", str(memory), "--model-dir", str(models), "--quiet", "--json"]  # fmt: skip
    out.mkdir(parents=True)
    with (out.parent / f"{out.name}.stdout").open("w+b") as stdout, tempfile.TemporaryFile() as stderr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, cwd=ROOT)
        proc.wait()
        wall = time.perf_counter() - t0
        stderr.seek(0)
        err = stderr.read().decode()
        if proc.returncode != 0:
            raise RuntimeError(f"run failed ({proc.returncode}): {err[-2000:]}")
        stdout.seek(0)
        summary = json.loads(stdout.read())
        peak_kb = int(err.strip().splitlines()[-1].removeprefix("runner-peak-kb "))
    workers = [json.loads(x) for x in (out / "invocations.jsonl").read_text().splitlines()]
    return {
        "summary": summary,
        "wall_s": wall,
        "runner_peak_mb": peak_kb / 1024,
        "workers_peak_mb": max(r.get("max_rss_mb") or 0 for r in workers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--memory", type=int, default=1769, help="MB per environment (1,769 MB = 1 vCPU)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mlinfer-bench" / "memory")
    args = parser.parse_args()
    from mlinfer.bench.machine import describe

    print(describe(), flush=True)
    from mlinfer.build.sklearn_train import train_and_save

    args.work.mkdir(parents=True, exist_ok=True)
    models = args.work / "models"
    if not (models / "logreg").is_dir():
        from mlinfer.data import SAMPLE_PATH

        src = DATA / "emotion.jsonl.gz"
        train_and_save(["logreg"], src if src.exists() else SAMPLE_PATH, models)
    pool = texts()
    print(f"logreg, batch {args.batch_size}, concurrency {args.concurrency}, {args.memory} MB per environment")
    print(f"{'lines':>10} {'file MB':>8} {'batches':>8} {'wall s':>7} {'items/s':>8} {'runner peak MB':>15} "
          f"{'worker peak MB':>15}")  # fmt: skip
    for n in args.lines:
        path = args.work / f"in-{n}.jsonl"
        if not path.exists():
            write_input(path, n, pool)
        out = args.work / f"out-{n}-{time.time_ns()}"
        r = one_run(path, out, models, args.batch_size, args.concurrency, args.memory)
        s = r["summary"]
        assert s["items"] == n == s["results"] + s["errors"], s
        print(f"{n:>10,} {path.stat().st_size / 1e6:8.1f} {s['batches']:>8,} {r['wall_s']:7.1f} "
              f"{n / r['wall_s']:8,.0f} {r['runner_peak_mb']:15.0f} {r['workers_peak_mb']:15.0f}",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
