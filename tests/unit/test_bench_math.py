"""Statistics and job projections against values computed by hand."""

from __future__ import annotations

import math

import pytest

from mlinfer.bench.recommend import Option, all_options, pareto_front, project, recommend
from mlinfer.bench.stats import bootstrap_ci, summarize


def rows(memory=1024, arch="x86_64", durations=(100, 200, 300, 400, 500), init=900.0, batch=100, conc=1):
    base = {"model": "m", "memory_mb": memory, "architecture": arch, "batch_size": batch, "concurrency": conc,
            "status": "ok", "reason": "", "max_memory_mb": 200, "items": batch}  # fmt: skip
    out = [
        {
            **base,
            "kind": "cold",
            "init_ms": init,
            "duration_ms": 150.0,
            "cost_usd": 1e-5,
            "cost_per_1000_items_usd": 1e-4,
        }
    ]
    for d in durations:
        out.append({**base, "kind": "warm", "init_ms": None, "duration_ms": float(d), "cost_usd": d * 1e-8,
                    "cost_per_1000_items_usd": d * 1e-7})  # fmt: skip
    return out


def test_summary_statistics_by_hand():
    (s,) = summarize(rows())
    assert s.warm_n == 5 and s.cold_n == 1
    assert s.warm_median_ms == 300.0
    assert s.warm_p90_ms == pytest.approx(460.0)  # numpy linear: 400 + 0.6 * 100
    assert s.cold_init_ms == 900.0 and s.cold_duration_ms == 150.0
    assert s.cost_per_1000_items_usd == pytest.approx(300e-7)
    lo, hi = s.warm_median_ci
    assert 100 <= lo <= 300 <= hi <= 500


def test_bootstrap_ci_is_degenerate_for_constant_data():
    assert bootstrap_ci([5.0] * 10) == (5.0, 5.0)


def test_projection_by_hand():
    (s,) = summarize(rows(durations=(200,) * 5, conc=4))
    # 1,000 items at batch 100 = 10 batches; concurrency 4: 4 cold environments, 3 rounds
    (par,) = project(s, 1000)
    assert par.batches == 10
    assert par.time_s == pytest.approx((900 + 150 + 2 * 200) / 1000)
    # Lambda: 4 cold invocations billed 1,050 ms + 6 warm of 200 ms, at 1 GB
    gbs = (4 * 1050 + 6 * 200) / 1000
    assert par.lambda_usd == pytest.approx(gbs * 0.0000166667 + 10 * 0.0000002)
    # orchestration: 5 + 1 + 10 transitions and 10 Express children of 200 ms at 64 MB
    express = 10 * 1e-6 + 10 * 0.2 * (64 / 1024) * 0.00001667
    # and S3: GETs of the input, plan.json (ItemReader), 10 slices, Summarize's 4 per batch; PUTs of plan.json,
    # 3 map results, 10 results + 10 metadata, results.jsonl, summary.json
    s3 = (1 + 1 + 10 + 40) * 4e-7 + (1 + 3 + 20 + 1 + 1) * 5e-6
    assert par.orchestration_usd == pytest.approx(16 * 0.000025 + express + s3)


def test_monolithic_projection_by_hand():
    (s,) = summarize(rows(durations=(200,) * 5))
    par, fan, mono = project(s, 1000)
    # fan-out: one function per batch (10), each a cold start: one round of 1,050 ms, 10 cold invocations
    assert fan.concurrency == 10 and fan.time_s == pytest.approx(1.05)
    assert fan.lambda_usd == pytest.approx(10 * 1.05 * 0.0000166667 + 10 * 0.0000002)
    assert mono.mode == "monolithic" and mono.time_s == pytest.approx((1050 + 9 * 200) / 1000)
    assert mono.lambda_usd == pytest.approx(math.ceil(1050 + 9 * 200) / 1000 * 0.0000166667 + 0.0000002)
    s3 = (1 + 1 + 10 + 40) * 4e-7 + (1 + 20 + 1 + 1) * 5e-6  # as parallel, one plan.json read, no map results
    assert mono.orchestration_usd == pytest.approx(7 * 0.000025 + s3)  # 5 fixed + RunMonolithic + MoreBatches
    assert par.mode == "parallel" and par.concurrency == 1


def opt(time_s, cost, mode="parallel", memory=1024):
    return Option(mode, memory, "x86_64", 100, 1, 10, time_s, cost, 0.0, cost)


def test_pareto_front_and_choices():
    options = [opt(10, 5.0), opt(20, 3.0), opt(30, 4.0), opt(40, 1.0), opt(15, 6.0)]
    assert [(o.time_s, o.cost_usd) for o in pareto_front(options)] == [(10, 5.0), (20, 3.0), (40, 1.0)]
    assert recommend(options, "cost").time_s == 40
    assert recommend(options, "speed").time_s == 10
    assert recommend(options, deadline_s=25).cost_usd == 3.0  # cheapest within 25 s
    assert recommend(options, budget_usd=4.5).time_s == 20  # fastest within $4.50
    assert recommend(options, deadline_s=5) is None
    # balanced, as Lambda Power Tuning scores it: (20, 3.0) scores 0.5 * 3/6 + 0.5 * 20/40 = 0.5, the lowest
    assert recommend(options, "balanced").time_s == 20
    # 2.3x the time for 1/29 of the cost is the balanced choice (min-max scaling made these two tie)
    assert recommend([opt(1.1, 0.0066), opt(2.5, 0.00023)], "balanced").time_s == 2.5


def test_skipped_configurations_are_not_projected():
    bad = [{**r, "status": "skipped", "reason": "oom: killed"} for r in rows(memory=128)]
    stats = summarize(bad + rows())
    assert [s.status for s in stats] == ["skipped", "ok"]
    assert "oom" in stats[0].reason
    assert {o.memory_mb for o in all_options(stats, 1000)} == {1024}


def test_projections_price_the_log_bytes_a_sweep_measured(tmp_path):
    from mlinfer.bench.recommend import log_bytes_per_batch

    (s,) = summarize(rows(durations=(200,) * 5))
    quiet = {o.mode + str(o.concurrency): o for o in project(s, 1000)}
    chatty = {o.mode + str(o.concurrency): o for o in project(s, 1000, log_bytes=1024**3 / 10)}  # 1 GB per 10
    for key, o in chatty.items():
        assert o.orchestration_usd == pytest.approx(quiet[key].orchestration_usd + 0.5)  # $0.50 per GB ingested
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "worker-1.log").write_bytes(b"x" * 1200)
    measured = [{"architecture": "x86_64", "measured_architecture": "x86_64", "target": "local"}] * 4
    priced = [{"architecture": "arm64", "measured_architecture": "x86_64", "target": "local"}] * 4
    assert log_bytes_per_batch(tmp_path, measured + priced) == 300.0
    assert log_bytes_per_batch(tmp_path, [{**r, "target": "aws"} for r in measured]) == 0.0
