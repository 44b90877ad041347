"""The local, embedded default: run a whole batch job on this machine, no AWS account needed."""

from mlinfer.local.context import LocalContext
from mlinfer.local.runner import RunConfig, RunResult, run_local

__all__ = ["LocalContext", "RunConfig", "RunResult", "run_local"]
