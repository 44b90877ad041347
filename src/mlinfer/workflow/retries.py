"""What the batch workflow retries when a batch's invocation fails, and how many times.

One table for both places that run batches: ``statemachine/batch_inference.asl.json`` (the ``Retry`` of
``InferBatch`` and ``RunMonolithic``; a test checks that they agree) and the local runner. Throttling and
service errors are transient; a crashed execution environment (``Runtime.ExitError``: a segfault, a
killed process) is replaced and tried once more; a source read is retried twice. A batch that ran out
of memory or time (``Runtime.OutOfMemory``, ``Sandbox.Timedout``) would do so again at the same memory
and timeout, so it is not retried: it is recorded, and its items become error lines.
"""

from __future__ import annotations

#: Error type -> retries after the first attempt (``MaxAttempts`` in the ASL).
BATCH_RETRIES: dict[str, int] = {
    "Lambda.TooManyRequestsException": 6,
    "Lambda.ServiceException": 6,
    "Lambda.AWSLambdaException": 6,
    "Lambda.SdkClientException": 6,
    "Lambda.ClientExecutionTimeoutException": 6,
    "SourceReadError": 2,
    "Runtime.ExitError": 1,
}


def retries_for(error_type: str) -> int:
    """How many more attempts a batch that failed with ``error_type`` gets."""
    return BATCH_RETRIES.get(error_type, 0)
