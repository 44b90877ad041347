"""CPU share of a Lambda function, the thread count that follows from it, and the process's peak memory.

Lambda allocates CPU in proportion to memory: one vCPU's worth at 1,769 MB, up to 6 vCPUs at 10,240 MB.
The cores the OS shows are not the share the function gets, so thread pools follow memory, not ``nproc``.
"""

from __future__ import annotations

import math
import os

MB_PER_VCPU = 1769
MAX_VCPUS = 6


def lambda_vcpus(memory_mb: int) -> float:
    """The CPU share Lambda gives a function of ``memory_mb``, in vCPUs (linear: 1.0 at 1,769 MB)."""
    return min(float(MAX_VCPUS), memory_mb / MB_PER_VCPU)


def lambda_cores(memory_mb: int) -> int:
    """Cores the function sees: enough to hold its share (1 up to 1,769 MB, 6 at 10,240 MB)."""
    return min(MAX_VCPUS, math.ceil(memory_mb / MB_PER_VCPU))


def available_cpus() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_count(memory_mb: int | None = None) -> int:
    """Threads for numeric libraries: ``MLINFER_THREADS``, else the memory-derived vCPU share, rounded."""
    if os.environ.get("MLINFER_THREADS"):
        return max(1, int(os.environ["MLINFER_THREADS"]))
    if memory_mb is None and os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"):
        memory_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
    if memory_mb is None:
        return available_cpus()
    return max(1, min(available_cpus(), round(lambda_vcpus(memory_mb))))


def configure_threads(memory_mb: int | None = None) -> int:
    """Cap BLAS/OpenMP pools (and torch, when loaded) at :func:`thread_count`; return the count."""
    n = thread_count(memory_mb)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    return n


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB): ``VmHWM``, which starts afresh at exec.

    ``getrusage(...).ru_maxrss`` is not used: Linux carries it across fork and exec, so a worker
    started by a large parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
