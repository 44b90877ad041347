"""Step Functions cost of a batch run: Standard state transitions, or Express requests and duration.

The workflow in ``statemachine/batch_inference.asl.json`` enters a known number of states per run, so
its transitions follow from the plan and what happened (batches, failures, retries, monolithic loops).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from mlinfer.cost.pricing import DEFAULT_REGION, load_prices, tiered_cost

#: Parent states entered once per run: Plan, ChooseMode, Summarize, CheckOutcome, and Succeed or Fail.
PARENT_FIXED_TRANSITIONS = 5
#: Express child executions are billed in 64 MB memory steps and 100 ms duration steps.
EXPRESS_MEMORY_MB = 64
EXPRESS_DURATION_STEP_MS = 100


@dataclass
class StepFunctionsCost:
    """Orchestration bill of one run."""

    workflow: str
    transitions: int
    express_requests: int
    express_gb_seconds: float
    standard: float
    express: float
    total: float

    def to_dict(self) -> dict:
        return asdict(self)


def parallel_transitions(
    batches: int, failed_batches: int = 0, retries: int = 0, standard_children: bool = False
) -> int:
    """Standard transitions of a parallel run.

    The parent enters its fixed states and the Map state, and is charged one transition per child
    execution the Distributed Map starts. Standard children also bill their own states (InferBatch,
    RecordBatchFailure for failed batches, and retries); Express children bill requests and duration.
    """
    parent = PARENT_FIXED_TRANSITIONS + 1 + batches
    return parent + (batches + failed_batches + retries if standard_children else 0)


def monolithic_transitions(invocations: int, retries: int = 0) -> int:
    """Each loop: RunMonolithic and MoreBatches, and Advance for all but the last."""
    return PARENT_FIXED_TRANSITIONS + 2 * invocations + max(0, invocations - 1) + retries


#: statemachine/resnet_pipeline.asl.json: CheckInput, RunBatches and Done once; per micro-batch the five
#: stage tasks and BatchDone (inline Map iterations bill their states as Standard transitions).
PIPELINE_FIXED_TRANSITIONS = 3
PIPELINE_TRANSITIONS_PER_BATCH = 6


def pipeline_transitions(batches: int, retries: int = 0) -> int:
    """Standard transitions of one ResNet pipeline execution over ``batches`` micro-batches."""
    return PIPELINE_FIXED_TRANSITIONS + PIPELINE_TRANSITIONS_PER_BATCH * batches + retries


def express_duration_gb_s(child_durations_ms: list[float]) -> float:
    """Express children's GB-seconds: each rounded up to 100 ms, at the 64 MB minimum."""
    billed = sum(math.ceil(d / EXPRESS_DURATION_STEP_MS) * EXPRESS_DURATION_STEP_MS for d in child_durations_ms)
    return billed / 1000 * EXPRESS_MEMORY_MB / 1024


def stepfunctions_cost(
    transitions: int,
    express_child_durations_ms: list[float] | None = None,
    region: str = DEFAULT_REGION,
    free_tier: bool = False,
) -> StepFunctionsCost:
    """Cost of ``transitions`` Standard transitions plus, for Express children, requests and duration."""
    table = load_prices(region).table["stepfunctions"]
    billable = max(0, transitions - table["standard_free_transitions"]) if free_tier else transitions
    standard = billable * table["standard_transition"]
    durations = express_child_durations_ms or []
    gbs = express_duration_gb_s(durations)
    express = len(durations) * table["express_request"] + tiered_cost(
        gbs, [(size, price) for size, price in table["express_gb_second"]]
    )
    return StepFunctionsCost(
        workflow="standard+express" if durations else "standard",
        transitions=transitions,
        express_requests=len(durations),
        express_gb_seconds=gbs,
        standard=standard,
        express=express,
        total=standard + express,
    )
