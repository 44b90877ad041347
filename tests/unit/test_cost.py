"""Cost arithmetic against values computed by hand."""

import pytest

from mlinfer.cost import billed_ms, gb_seconds, lambda_cost, load_prices, project_lambda_cost, tiered_cost


def test_billing_rounds_up_to_the_millisecond():
    assert billed_ms(100.0) == 100
    assert billed_ms(100.01) == 101
    assert billed_ms(0.2) == 1


def test_gb_seconds():
    # 1,000 ms at 1,024 MB = 1 GB-s; 1,500 ms at 1,769 MB = 1.5 * 1769/1024 = 2.59130859375 GB-s
    assert gb_seconds(1000, 1024) == 1.0
    assert gb_seconds(1500, 1769) == pytest.approx(2.59130859375)


def test_hand_computed_lambda_cost_x86():
    # 10 invocations of 2,000 ms at 2,048 MB: 10 * 2 s * 2 GB = 40 GB-s
    # compute 40 * 0.0000166667 = 0.000666668; requests 10 * 0.0000002 = 0.000002
    cost = lambda_cost([2000] * 10, memory_mb=2048, architecture="x86_64")
    assert cost.gb_seconds == 40.0
    assert cost.compute == pytest.approx(0.000666668)
    assert cost.requests == pytest.approx(0.000002)
    assert cost.total == pytest.approx(0.000668668)


def test_hand_computed_lambda_cost_arm64():
    # 1 invocation, 512 MB, 10,000 ms -> 5 GB-s * 0.0000133334 = 0.000066667 + 0.0000002
    cost = lambda_cost([10_000], memory_mb=512, architecture="arm64")
    assert cost.total == pytest.approx(0.000066667 + 0.0000002)


def test_projection_bills_init_without_a_request():
    # durations 99.2 -> 100 ms and 200.0 -> 200 ms; one INIT of 799.1 -> 800 ms; 1,024 MB
    # 1,100 ms * 1 GB = 1.1 GB-s -> 1.1 * 0.0000166667 = 0.00001833337; 2 requests = 0.0000004
    cost = project_lambda_cost([99.2, 200.0], memory_mb=1024, init_ms=[799.1])
    assert cost.billed_ms == 1100 and cost.invocations == 2
    assert cost.total == pytest.approx(0.00001833337 + 0.0000004)


def test_volume_tiers():
    tiers = [(10.0, 2.0), (5.0, 1.0), (None, 0.5)]
    assert tiered_cost(12, tiers) == 10 * 2 + 2 * 1
    assert tiered_cost(10, tiers, already_used=8) == 2 * 2 + 5 * 1 + 3 * 0.5


def test_regions_and_errors():
    assert load_prices("eu-west-1").gb_second("x86_64") == load_prices("us-east-1").gb_second("x86_64")
    assert load_prices("eu-central-1").table["s3"]["put_request"] == 5.4e-6
    with pytest.raises(ValueError, match="known"):
        load_prices("mars-1")
    with pytest.raises(ValueError, match="architecture"):
        lambda_cost([1], 128, architecture="sparc")


def test_step_functions_transitions_by_hand():
    from mlinfer.cost.stepfunctions import monolithic_transitions, parallel_transitions

    # parent: Plan, ChooseMode, Map, Summarize, CheckOutcome, Done = 6, plus one per child started (10)
    assert parallel_transitions(10) == 16
    # Standard children add InferBatch per batch (10) and RecordBatchFailure per failed batch (2)
    assert parallel_transitions(10, failed_batches=2, standard_children=True) == 16 + 10 + 2
    # monolithic with 4 invocations: 5 fixed + RunMonolithic x4 + MoreBatches x4 + Advance x3
    assert monolithic_transitions(4) == 5 + 4 + 4 + 3
    from mlinfer.cost.stepfunctions import pipeline_transitions

    assert pipeline_transitions(3) == 3 + 3 * 6 and pipeline_transitions(1, retries=2) == 11


def test_step_functions_cost_by_hand():
    from mlinfer.cost.stepfunctions import stepfunctions_cost

    # 1,000 Standard transitions at $0.025 per 1,000 = $0.025
    assert stepfunctions_cost(1000).total == pytest.approx(0.025)
    assert stepfunctions_cost(5000, free_tier=True).standard == pytest.approx(1000 * 0.000025)
    # two Express children of 120 ms and 80 ms: billed 200 + 100 ms at 64 MB = 0.3 s * 0.0625 GB
    # = 0.01875 GB-s * $0.00001667 + 2 requests * $0.000001
    cost = stepfunctions_cost(16, [120.0, 80.0])
    assert cost.express_gb_seconds == pytest.approx(0.01875)
    assert cost.express == pytest.approx(0.01875 * 0.00001667 + 2e-6)
    assert cost.total == pytest.approx(16 * 0.000025 + 0.01875 * 0.00001667 + 2e-6)


def test_s3_request_cost_by_hand():
    from mlinfer.cost.pricing import s3_request_cost

    # 1,000 PUTs at $0.005 per 1,000 and 10,000 GETs at $0.0004 per 1,000 (us-east-1).
    assert s3_request_cost(1000, 10_000) == pytest.approx(0.005 + 0.004)


def test_s3_requests_and_log_ingestion_of_a_run():
    from mlinfer.cost.storage import MULTIPART_PART_BYTES, logs_cost, run_s3_requests

    small = run_s3_requests("parallel", 10)
    assert (small.gets, small.puts) == (1 + 1 + 10 + 40, 1 + 3 + 20 + 1 + 1)
    assert small.usd == pytest.approx(small.gets * 4e-7 + small.puts * 5e-6)
    big = run_s3_requests("parallel", 10, results_bytes=3 * MULTIPART_PART_BYTES)  # a multipart results.jsonl
    assert big.puts == small.puts - 1 + 3 + 2
    failed = run_s3_requests("monolithic", 10, failed_batches=2, failed_try_notes=1, invocations=3)
    assert (failed.gets, failed.puts) == (1 + 3 + 8 + 32 + 6, 1 + 16 + 1 + 2 + 1 + 1)
    assert logs_cost(2 * 1024**3)["usd"] == pytest.approx(1.0)  # $0.50 per GB ingested
    assert logs_cost(None)["usd"] == 0.0 and "IncomingBytes" in logs_cost(None)["note"]
