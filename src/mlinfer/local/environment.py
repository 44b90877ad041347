"""One execution environment, as Lambda runs it: a fresh interpreter that imports the handler and loads the
model once (INIT), then serves invocations one at a time, confined to Lambda's CPU share and memory limit.

Used by the local runner (``mlinfer run``) and the local benchmarks (``mlinfer bench``). Limits:

* ``cgroup``: the process runs in a :class:`~mlinfer.bench.limits.Sandbox` (CPU quota = the share of the
  memory size, memory limit = the memory size; over it the kernel kills the process, as Lambda does);
* ``scaled``: no sandbox (no cgroup rights, or not Linux); each invocation's billed duration is its CPU
  time divided by the CPU share, when that is longer than its wall time;
* ``none``: durations as measured on this machine's cores.

A failure of the environment itself (killed by the memory limit, a crash, a timeout) raises
:class:`EnvironmentFailure` with the error type Lambda reports for it (``Runtime.OutOfMemory``,
``Runtime.ExitError``, ``Sandbox.Timedout``); an exception in the handler is a function error and comes back
in the invocation record, as Lambda returns it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Literal

from mlinfer.bench.limits import Sandbox
from mlinfer.cost.pricing import billed_ms
from mlinfer.local.context import LocalContext, peak_rss_mb
from mlinfer.runtime.threads import lambda_vcpus

Limits = Literal["cgroup", "scaled", "none"]
#: Seconds a worker may take to import and load its model before it is given up (Lambda's INIT limit).
INIT_TIMEOUT_S = 600.0


class EnvironmentFailure(Exception):
    """The environment died or timed out; ``error_type`` is what Lambda would report."""

    def __init__(self, error_type: str, message: str, record: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.record = record or {}


def choose_limits(memory_mb: int, requested: str = "auto") -> Limits:
    """``cgroup`` where a sandbox can enforce both limits here, else ``scaled``; or what was requested."""
    if requested in ("scaled", "none"):
        return requested  # type: ignore[return-value]
    cpu, memory = Sandbox.probe(memory_mb)
    if cpu and memory:
        return "cgroup"
    if requested == "cgroup":
        raise RuntimeError("cgroup limits are not available here (Linux with writable cgroups, e.g. as root)")
    return "scaled"


# --- inside the worker process ------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _projected_ms(wall_ms: float, cpu_ms: float, share: float | None) -> float:
    """Billed-duration basis: wall time, or CPU time at Lambda's share when that is longer (``scaled``)."""
    return max(wall_ms, cpu_ms / share) if share else wall_ms


def worker_init(
    model: str, model_dir: str | None, memory_mb: int, architecture: str, log_dir: str, scale_share: float | None
) -> float:
    """The INIT phase: a Lambda-like environment, the handler's imports and the model load. Returns its ms."""
    os.environ.update(
        MODEL_NAME=model,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(memory_mb),
        MLINFER_ARCHITECTURE=architecture,
        POWERTOOLS_TRACE_DISABLED="true",
        POWERTOOLS_SERVICE_NAME="mlinfer",
        POWERTOOLS_METRICS_NAMESPACE=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "MLInference"),
    )
    if model_dir:
        os.environ["MODEL_DIR"] = model_dir
    log = open(Path(log_dir) / f"worker-{os.getpid()}.log", "a", buffering=1, encoding="utf-8")  # noqa: SIM115
    sys.stdout = sys.stderr = log  # what a function prints, warnings included, goes to its log, as on Lambda
    t0, c0 = time.perf_counter(), time.process_time()
    from mlinfer.runtime.handler import create_handler

    handler = create_handler(model)
    wall, cpu = (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000
    init_ms = _projected_ms(wall, cpu, scale_share)
    _WORKER.update(handler=handler, log=log, init_ms=init_ms, cold=True, memory=memory_mb, share=scale_share)
    return init_ms


def worker_invoke(event: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """One invocation of the handler, framed by Lambda-style ``START``/``END``/``REPORT`` log lines."""
    ctx = LocalContext(
        function_name=f"mlinfer-{os.environ['MODEL_NAME']}", memory_limit_in_mb=_WORKER["memory"], timeout_s=timeout_s
    )
    log = _WORKER["log"]
    cold, _WORKER["cold"] = _WORKER["cold"], False
    log.write(f"START RequestId: {ctx.aws_request_id} Version: $LATEST\n")
    t0, c0 = time.perf_counter(), time.process_time()
    error, response = None, {}
    try:
        response = _WORKER["handler"](event, ctx)
    except Exception as exc:  # a function error: returned to the caller, as Lambda does
        error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
    wall, cpu = (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000
    duration = _projected_ms(wall, cpu, _WORKER["share"])
    rss_mb = peak_rss_mb()
    init = f"\tInit Duration: {_WORKER['init_ms']:.2f} ms" if cold else ""
    billed = billed_ms(duration + (_WORKER["init_ms"] if cold else 0.0))  # Lambda bills INIT since 2025-08
    log.write(f"END RequestId: {ctx.aws_request_id}\n")
    log.write(
        f"REPORT RequestId: {ctx.aws_request_id}\tDuration: {duration:.2f} ms"
        f"\tBilled Duration: {billed} ms\tMemory Size: {_WORKER['memory']} MB"
        f"\tMax Memory Used: {rss_mb:.0f} MB{init}\t\n"
    )
    return {
        "response": response,
        "error": error,
        "duration_ms": duration,
        "wall_ms": wall,
        "cpu_ms": cpu,
        "init_ms": _WORKER["init_ms"] if cold else None,
        "max_rss_mb": rss_mb,
        "request_id": ctx.aws_request_id,
    }


def _die_with_parent() -> None:
    """On Linux, the kernel kills this worker when the runner dies (``kill -9``), as a reboot would: no batch
    goes on unrecorded after its run has gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the runner died before the call
            os._exit(1)


def _serve(conn: Any, init_args: tuple, cores: list[int] | None) -> None:
    """The worker's main loop: wait until sandboxed, INIT, then answer invocations until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
    _die_with_parent()
    conn.recv()
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    try:
        init_ms = worker_init(*init_args)
    except BaseException as exc:
        conn.send({"init_error": {"errorType": type(exc).__name__, "errorMessage": str(exc)}})
        return
    conn.send({"ready": init_ms})
    while (msg := conn.recv()) is not None:
        conn.send(worker_invoke(*msg))


# --- in the runner ------------------------------------------------------------------------------------------


class Environment:
    """A worker process (one execution environment); :meth:`invoke` returns its invocation record."""

    def __init__(
        self,
        model: str,
        model_dir: str | None,
        memory_mb: int,
        log_dir: Path,
        architecture: str = "x86_64",
        limits: Limits = "cgroup",
        slot: int = 0,
    ) -> None:
        self.memory_mb = memory_mb
        self.limits = limits
        self.sandbox = Sandbox(memory_mb, enforce=limits == "cgroup")
        share = lambda_vcpus(memory_mb) if limits == "scaled" else None
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        init_args = (model, model_dir, memory_mb, architecture, str(log_dir), share)
        cores = self.sandbox.cores_for(slot) if limits == "cgroup" else None
        self.proc = ctx.Process(target=_serve, args=(child, init_args, cores), daemon=True)
        self.started = time.perf_counter()
        self.proc.start()
        child.close()  # so that a worker that dies shows as EOF here, not as silence
        self.sandbox.add(self.proc.pid)
        self.conn.send("go")
        reply = self._recv(INIT_TIMEOUT_S, "INIT")
        if "init_error" in reply:
            self.close()
            err = reply["init_error"]
            raise EnvironmentFailure(err["errorType"], err["errorMessage"], self._dead_record(0.0))
        self.init_ms: float = reply["ready"]

    @property
    def pid(self) -> int:
        return self.proc.pid or 0

    def _dead_record(self, elapsed_ms: float) -> dict[str, Any]:
        """What a failed invocation is billed: the time it ran (Lambda bills a timed-out or crashed one)."""
        return {"response": {}, "duration_ms": elapsed_ms, "init_ms": None, "max_rss_mb": 0.0, "request_id": None}

    def _recv(self, timeout_s: float, what: str, grace_s: float = 0.0) -> dict[str, Any]:
        t0 = time.perf_counter()
        if not self.conn.poll(timeout_s + grace_s):
            self.proc.kill()  # at once, as Lambda stops a function at its timeout: nothing more gets written
            self.close()
            record = self._dead_record(timeout_s * 1000)  # Lambda bills a timed-out invocation its timeout
            raise EnvironmentFailure("Sandbox.Timedout", f"{what} timed out after {timeout_s:.2f} seconds", record)
        try:
            return self.conn.recv()
        except (EOFError, ConnectionError, OSError):
            self.proc.join(5)
            record = self._dead_record((time.perf_counter() - t0) * 1000)
            code = self.proc.exitcode
            oom = self.sandbox.oom_kills() > 0
            self.close()
            if oom:
                raise EnvironmentFailure(
                    "Runtime.OutOfMemory", f"Runtime exited: out of memory (limit {self.memory_mb} MB)", record
                ) from None
            if code is not None and code < 0:
                name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
                raise EnvironmentFailure(
                    "Runtime.ExitError", f"Runtime exited with error: signal {name}", record
                ) from None
            raise EnvironmentFailure(
                "Runtime.ExitError", f"Runtime exited with error: exit status {code}", record
            ) from None

    def invoke(self, event: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Serve one event; raises :class:`EnvironmentFailure` when the environment does not survive it."""
        self.conn.send((event, timeout_s))
        return self._recv(timeout_s, "Task", grace_s=0.5)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError, BrokenPipeError):
            self.conn.send(None)
        self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.sandbox.close()
