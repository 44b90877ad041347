"""A Lambda context object for running handlers outside Lambda (same attributes the runtime reads)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from mlinfer.runtime.threads import peak_rss_mb  # noqa: F401  (the local runner's import path)


@dataclass
class LocalContext:
    """Mimics ``awslambdaric``'s context: names, memory, request id and the remaining-time clock."""

    function_name: str = "mlinfer-local"
    memory_limit_in_mb: int = 1024
    timeout_s: float = 900.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/mlinfer-local"
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
