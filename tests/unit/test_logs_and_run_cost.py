"""The log parser on real-format fixtures (text and JSON log formats), and costs computed from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlinfer.bench.logs import parse_paths, parse_report_text
from mlinfer.cost.runs import cost_from_invocations, monolithic_cost, parallel_cost

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "logs"


def test_text_format_report_and_emf_are_joined():
    invs = parse_paths([FIXTURES / "cloudwatch-text.log"])
    assert [i.request_id[:8] for i in invs] == ["8f5c3a1e", "2b7d9e40", "c0ffee00"]
    cold, warm, timeout = invs
    assert cold.cold and cold.init_ms == 1150.02 and cold.billed_ms == 1391 and cold.memory_mb == 1024
    assert cold.items == 100 and cold.item_errors == 2 and cold.metrics["ModelLoadTime"] == [850.2]
    expected = {"model": "logreg", "memory_mb": "1024", "architecture": "x86_64", "function_name": "mlinfer-logreg"}
    assert expected.items() <= cold.dimensions.items()
    assert cold.metrics["ColdStart"] == [1.0]  # Powertools' cold-start blob joins the cold request
    assert not warm.cold and warm.billed_ms == 220 and warm.items == 100 and warm.max_memory_mb == 313
    assert timeout.status == "timeout" and timeout.items == 0


def test_json_format_report_and_wrapped_emf():
    invs = parse_paths([FIXTURES / "cloudwatch-json.log"])
    assert len(invs) == 2
    first, second = invs
    assert first.init_ms == 800.1 and first.billed_ms == 1201 and first.memory_mb == 2048
    assert first.items == 500 and first.item_errors == 1 and first.dimensions["architecture"] == "arm64"
    assert second.status == "error" and second.error_type == "Runtime.ExitError" and not second.cold


def test_report_line_from_sam_local_invoke():
    line = "REPORT RequestId: ed2f0527-d708	Init Duration: 0.39 ms	Duration: 2051.15 ms	Billed Duration: 2052 ms	Memory Size: 1024 MB	Max Memory Used: 1024 MB	"  # noqa: E501
    fields = parse_report_text(line)
    assert fields == {"request_id": "ed2f0527-d708", "init_ms": 0.39, "duration_ms": 2051.15, "billed_ms": 2052,
                      "memory_mb": 1024, "max_memory_mb": 1024}  # fmt: skip


def test_cost_from_invocations_by_hand():
    invs = parse_paths([FIXTURES / "cloudwatch-text.log"])[:2]
    run = cost_from_invocations(invs, architecture="x86_64")
    # billed 1,391 + 220 = 1,611 ms at 1 GB = 1.611 GB-s * 0.0000166667 + 2 requests * 0.0000002
    expected = 1.611 * 0.0000166667 + 2 * 0.0000002
    assert run.billed_ms == 1611 and run.gb_seconds == pytest.approx(1.611)
    assert run.total_usd == pytest.approx(expected)
    assert run.items == 200 and run.per_item_usd == pytest.approx(expected / 200)
    assert run.per_1000_items_usd == pytest.approx(expected * 5)
    assert run.per_batch_usd == pytest.approx([1.391 * 0.0000166667 + 2e-7, 0.220 * 0.0000166667 + 2e-7])
    assert run.cold_starts == 1


def test_the_two_equations_by_hand():
    # parallel: 500 functions of 2,000 ms at 1,769 MB (x86_64) + $0.0125 orchestration
    gbs = 500 * 2.0 * 1769 / 1024
    assert parallel_cost([2000] * 500, 1769, orchestration_usd=0.0125) == pytest.approx(
        gbs * 0.0000166667 + 500 * 0.0000002 + 0.0125
    )
    # monolithic: one function of 900,000 ms at 3,008 MB on arm64
    assert monolithic_cost(900_000, 3008, "arm64") == pytest.approx(900 * 3008 / 1024 * 0.0000133334 + 0.0000002)


def test_local_runner_logs_parse_like_aws(use_models, tmp_path, emotion_rows):
    import json

    from mlinfer.local.runner import RunConfig, run_local

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in emotion_rows[:120]))
    result = run_local(RunConfig("kmeans", src, tmp_path / "out", batch_size=50, concurrency=1, progress=False))
    invs = parse_paths(sorted((tmp_path / "out" / "logs").glob("*.log")))
    assert len(invs) == 3 and sum(i.items for i in invs) == 120
    assert sum(i.cold for i in invs) == 1
    run = cost_from_invocations(invs)
    assert run.invocations == 3 and run.items == 120
    assert run.billed_ms >= sum(round(i.duration_ms) for i in invs)  # INIT is in the cold one's billed time
    assert result.summary["cold_starts"] == 1


def test_free_tier_and_ephemeral_storage():
    from mlinfer.cost import lambda_cost

    assert lambda_cost([1000] * 10, 1024, free_tier=True).total == 0.0  # well inside the free tier
    # 10 s at 1 GB with 10,240 MB ephemeral: 10 GB-s compute + 10 s * 9.5 GB extra storage
    cost = lambda_cost([10_000], 1024, ephemeral_mb=10_240)
    assert cost.compute == pytest.approx(10 * 0.0000166667 + 10 * (9728 / 1024) * 0.0000000309)
