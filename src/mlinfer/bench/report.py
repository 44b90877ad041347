"""Plots and a Markdown/HTML report of a sweep: what it costs, how fast it is, what to pick."""

from __future__ import annotations

import base64
import html
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from mlinfer.bench.recommend import Option, all_options, log_bytes_per_batch, pareto_front, recommend
from mlinfer.bench.stats import ConfigStats, read_rows, summarize


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def plot_memory(stats: list[ConfigStats], out: Path) -> list[Path]:
    """Duration (warm and cold) and cost per 1,000 items against memory, per architecture."""
    plt = _plt()
    ok = [s for s in stats if s.status == "ok"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    series: dict[tuple, list[ConfigStats]] = defaultdict(list)
    for s in ok:
        series[(s.model, s.architecture, s.batch_size, s.concurrency)].append(s)
    for (model, arch, batch, conc), group in sorted(series.items()):
        group.sort(key=lambda s: s.memory_mb)
        mem = [s.memory_mb for s in group]
        label = f"{model} {arch} b{batch}" + (f" c{conc}" if conc > 1 else "")
        if arch == "x86_64" or "x86_64" not in {a for _, a, _, _ in series}:  # durations do not depend on price
            ax1.plot(mem, [s.warm_median_ms for s in group], "o-", label=f"{label} warm")
            ax1.plot(mem, [s.cold_init_ms + s.cold_duration_ms for s in group], "s--", label=f"{label} cold")
        ax2.plot(mem, [s.cost_per_1000_items_usd for s in group], "o-", label=label)
    for ax, title, ylabel in (
        (ax1, "Duration vs memory", "ms (median)"),
        (ax2, "Cost vs memory", "USD per 1,000 items (warm)"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("memory (MB)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    ax1.set_yscale("log")
    return [_save(fig, out / "memory.png")]


def plot_batch(stats: list[ConfigStats], out: Path) -> list[Path]:
    """Cost per 1,000 items against batch size, per memory size."""
    plt = _plt()
    ok = [
        s
        for s in stats
        if s.status == "ok" and s.architecture == "x86_64" and s.concurrency == min(x.concurrency for x in stats)
    ]
    if len({s.batch_size for s in ok}) < 2:
        return []
    fig, ax = plt.subplots(figsize=(6, 4))
    by_mem: dict[int, list[ConfigStats]] = defaultdict(list)
    for s in ok:
        by_mem[s.memory_mb].append(s)
    for mem, group in sorted(by_mem.items()):
        group.sort(key=lambda s: s.batch_size)
        ax.plot([s.batch_size for s in group], [s.cost_per_1000_items_usd for s in group], "o-", label=f"{mem} MB")
    ax.set_xscale("log")
    ax.set(xlabel="batch size", ylabel="USD per 1,000 items (warm)", title="Cost vs batch size")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return [_save(fig, out / "batch.png")]


def plot_time_cost(options: list[Option], front: list[Option], out: Path, items: int) -> list[Path]:
    """Projected job time against cost: parallel vs monolithic across batch sizes, Pareto front marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 5))
    for mode, marker in (("parallel", "o"), ("monolithic", "s")):
        pts = [o for o in options if o.mode == mode]
        ax.scatter([o.time_s / 60 for o in pts], [o.cost_usd for o in pts], marker=marker, alpha=0.6, label=mode)
    ax.plot([o.time_s / 60 for o in front], [o.cost_usd for o in front], "k--", lw=1, label="Pareto front")
    for o in front[:8]:
        ax.annotate(f"b{o.batch_size} {o.memory_mb}MB", (o.time_s / 60, o.cost_usd), fontsize=6)
    ax.set_xscale("log")
    ax.set(xlabel="projected job time (min)", ylabel="projected cost (USD)", title=f"Time vs cost, {items:,} items")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return [_save(fig, out / "time_vs_cost.png")]


def plot_concurrency(stats: list[ConfigStats], options: list[Option], out: Path) -> list[Path]:
    """Warm duration (contention) and projected job time against concurrency."""
    concs = sorted({s.concurrency for s in stats})
    if len(concs) < 2:
        return []
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    groups: dict[tuple, list] = defaultdict(list)
    for s in stats:
        if s.status == "ok" and s.architecture == "x86_64":
            groups[(s.memory_mb, s.batch_size)].append(s)
    for (mem, batch), group in sorted(groups.items()):
        group.sort(key=lambda s: s.concurrency)
        ax1.plot([s.concurrency for s in group], [s.warm_median_ms for s in group], "o-", label=f"{mem} MB b{batch}")
        opts = sorted((o for o in options if o.mode == "parallel" and o.memory_mb == mem and o.batch_size == batch
                       and o.architecture == "x86_64"), key=lambda o: o.concurrency)  # fmt: skip
        ax2.plot([o.concurrency for o in opts], [o.time_s for o in opts], "o-", label=f"{mem} MB b{batch}")
    ax1.set(xlabel="concurrency", ylabel="warm batch ms (median)", title="Per-batch duration vs concurrency")
    ax2.set(xlabel="concurrency", ylabel="projected job time (s)", title="Job time vs concurrency")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return [_save(fig, out / "concurrency.png")]


def plot_architecture(stats: list[ConfigStats], out: Path) -> list[Path]:
    """x86_64 vs arm64 cost per 1,000 items at each memory size."""
    archs = sorted({s.architecture for s in stats})
    if len(archs) < 2:
        return []
    plt = _plt()
    ok = [
        s
        for s in stats
        if s.status == "ok" and s.batch_size == stats[0].batch_size and s.concurrency == stats[0].concurrency
    ]
    mems = sorted({s.memory_mb for s in ok})
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(archs)
    for k, arch in enumerate(archs):
        vals = {s.memory_mb: s.cost_per_1000_items_usd for s in ok if s.architecture == arch}
        ax.bar([i + k * width for i in range(len(mems))], [vals.get(m, 0) for m in mems], width, label=arch)
    ax.set_xticks([i + width / 2 for i in range(len(mems))], [str(m) for m in mems])
    ax.set(xlabel="memory (MB)", ylabel="USD per 1,000 items (warm)", title="x86_64 vs arm64")
    ax.legend()
    return [_save(fig, out / "architecture.png")]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.3g}" if abs(v) < 0.01 else f"{v:,.2f}"
    if isinstance(v, tuple):
        return f"[{_fmt(v[0])}, {_fmt(v[1])}]"
    return str(v)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def build_report(
    sweep_dir: Path, items: int = 25_000, deadline_s: float | None = None, budget_usd: float | None = None
) -> Path:
    """Write ``report.md``, ``report.html``, ``stats.json`` and the plots into ``sweep_dir``."""
    rows = read_rows(sweep_dir / "invocations.csv")
    meta = json.loads((sweep_dir / "sweep.json").read_text()) if (sweep_dir / "sweep.json").exists() else {}
    stats = summarize(rows)
    options = all_options(stats, items, log_bytes=log_bytes_per_batch(sweep_dir, rows))
    front = pareto_front(options)
    plots_dir = sweep_dir / "plots"
    plots_dir.mkdir(exist_ok=True)
    plots = plot_memory(stats, plots_dir) + plot_batch(stats, plots_dir) + plot_concurrency(stats, options, plots_dir)
    plots += plot_architecture(stats, plots_dir)
    if options:
        plots += plot_time_cost(options, front, plots_dir, items)
    (sweep_dir / "stats.json").write_text(json.dumps([s.to_dict() for s in stats], indent=2) + "\n")

    target = rows[0]["target"] if rows else "local"
    limits = {(r["cpu_enforced"], r["memory_enforced"]) for r in rows}
    caveat = (
        "Durations were measured on AWS Lambda." if target == "aws" else
        "**Projection.** Durations were measured on this machine, each execution environment a worker process "
        "confined to Lambda's CPU share (1 vCPU per 1,769 MB) and memory size "
        + ("with cgroups" if ("True", "True") in limits else "**without enforced limits** (no writable cgroups)")
        + f"; at most {meta.get('host_cpus', '?')} cores, so shares above that are capped. arm64 rows are x86_64 "
        "durations priced at arm64 rates."
    )  # fmt: skip
    picks = {name: recommend(options, strategy=name) for name in ("cost", "speed", "balanced")}
    if deadline_s is not None:
        picks[f"cheapest within {deadline_s:g} s"] = recommend(options, deadline_s=deadline_s)
    if budget_usd is not None:
        picks[f"fastest within ${budget_usd:g}"] = recommend(options, budget_usd=budget_usd)
    model = rows[0]["model"] if rows else "?"
    config_rows = [
        [s.memory_mb, s.architecture, s.batch_size, s.concurrency, s.warm_n,
         f"{_fmt(s.warm_median_ms)} {_fmt(s.warm_median_ci)}", s.warm_p90_ms, s.warm_p99_ms, s.cold_init_ms,
         f"{_fmt(s.cost_per_1000_items_usd)} {_fmt(s.cost_per_1000_ci)}", s.max_memory_mb,
         s.status if s.status == "ok" else f"skipped: {s.reason}"]
        for s in stats
    ]  # fmt: skip
    config_headers = ["memory MB", "arch", "batch", "conc.", "warm n", "warm median ms [95% CI]", "p90", "p99",
                      "cold init ms", "USD / 1,000 items [95% CI]", "max MB", "status"]  # fmt: skip
    pick_rows = [
        [name, o.label(), o.time_s, o.cost_usd, o.lambda_usd, o.orchestration_usd] if o else [name, "none fits"]
        for name, o in picks.items()
    ]
    md = [
        f"# Benchmark report: {model}",
        "",
        caveat,
        "",
        "## Per configuration",
        "",
        _table(config_headers, config_rows),
        "",
        f"## Recommendation for a job of {items:,} items",
        "",
        _table(["strategy", "configuration", "time (s)", "cost (USD)", "Lambda", "orchestration"], pick_rows),
        "",
        "## Pareto front (no option is both faster and cheaper)",
        "",
        _table(
            ["configuration", "batches", "time (s)", "cost (USD)"],
            [[o.label(), o.batches, o.time_s, o.cost_usd] for o in front],
        ),
        "",
        "## Plots",
        "",
        *[f"![{p.stem}](plots/{p.name})" for p in plots],
        "",
    ]
    text = "\n".join(md)
    (sweep_dir / "report.md").write_text(text)
    (sweep_dir / "report.html").write_text(_html(text, model, sweep_dir))
    return sweep_dir / "report.md"


def _html(markdown: str, title: str, base: Path | None = None) -> str:
    """A self-contained HTML page: tables from the Markdown report, plots inline (``data:`` URIs), so the
    page can be mailed or attached as one file."""
    body, table = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            if not set(line) <= {"|", "-"}:
                table.append([html.escape(c.strip()).replace("**", "") for c in line.strip("|").split("|")])
            continue
        if table:
            head, *rest = table
            cells = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rest)
            body.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>" + cells + "</table>")
            table = []
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("!["):
            src = line[line.index("(") + 1 : -1]
            alt = line[2 : line.index("]")]
            path = (base / src) if base is not None else None
            if path is not None and path.is_file():
                src = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
            body.append(f'<p><img src="{html.escape(src)}" alt="{html.escape(alt)}" style="max-width:100%"></p>')
        elif line.strip():
            body.append(f"<p>{html.escape(line).replace('**', '')}</p>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}"
    )
    head = f"<meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(body)}</body></html>\n"
