"""The one test double at the AWS boundary: Lambda invocations from moto's Step Functions interpreter.

moto executes the real ASL definition (its interpreter comes from LocalStack) when its config sets
``stepfunctions.execute_state_machine``; with ``lambda.use_docker = False`` its Docker-free Lambda backend
routes every Invoke through ``LambdaSimpleBackend.invoke``. :class:`LambdaSeam` replaces that single
method: it dispatches by function name to the project's real handlers, in process, with a Lambda-like
context, and turns an exception into a Lambda function error the way the Lambda service does. Tests can
inject, for chosen invocations, a throttle (HTTP 429), a failure, a timeout (``Sandbox.Timedout``, billed
for the whole timeout), or an S3 read of the batch's source that fails once (moto's S3 answers
``NoSuchKey``, as a read can during an outage).

Like the platform, it starts a fresh execution environment (a new handler, a cold start) when the
function's configuration changed, and answers ``LogType=Tail`` with a REPORT line (duration, billed
duration including INIT, the configured memory).
"""

from __future__ import annotations

import base64
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.s3.exceptions import MissingKey
from moto.s3.responses import S3Response

from mlinfer.local.context import LocalContext


class TooManyRequests(LambdaClientError):
    """What Lambda answers when the account or function concurrency is exhausted."""

    code = 429

    def __init__(self) -> None:
        super().__init__("TooManyRequestsException", "Rate exceeded")


@dataclass
class Fault:
    """Make invocations matching ``when(function_name, event)`` throttle or raise, ``times`` times."""

    when: Callable[[str, dict], bool]
    kind: str  # "throttle", "error", "timeout" or "s3-read"
    times: int = 1


@dataclass
class LambdaSeam:
    handlers: dict[str, Callable[[dict, Any], Any]] = field(default_factory=dict)
    factories: dict[str, Callable[[], Callable[[dict, Any], Any]]] = field(default_factory=dict)
    _configs: dict[str, tuple] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    calls: list[tuple[str, dict, str]] = field(default_factory=list)  # (function, event, outcome)
    timeout_s: float = 900.0
    failing_reads: set[str] = field(default_factory=set)  # S3 keys whose next GetObject fails
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _lock_reads: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any):
        name = function_name.split(":")[6] if function_name.startswith("arn:") else function_name
        event = json.loads(body) if body else {}
        with self._lock:  # one execution environment per function: one request at a time
            for fault in self.faults:
                if fault.times > 0 and fault.when(name, event):
                    fault.times -= 1
                    if fault.kind == "s3-read":  # the handler runs; its first read of the source fails
                        self.failing_reads.add(event["source"]["uri"].split("/", 3)[3])
                        break
                    self.calls.append((name, event, fault.kind))
                    if fault.kind == "throttle":
                        raise TooManyRequests()
                    if fault.kind == "timeout":
                        message = f"RequestId: injected Error: Task timed out after {self.timeout_s:.2f} seconds"
                        return self._error(response_headers, TimeoutError(message), "Sandbox.Timedout")
                    return self._error(response_headers, RuntimeError(f"injected failure in {name}"))
            fn = backend.get_function(name)
            init_ms = self._environment(name, fn)
            handler = self.handlers.get(name)
            if handler is None:
                raise LambdaClientError("ResourceNotFoundException", f"Function not found: {name}")
            ctx = LocalContext(function_name=name, timeout_s=self.timeout_s, memory_limit_in_mb=int(fn.memory_size))
            t0 = time.perf_counter()
            try:
                result, outcome = handler(event, ctx), "ok"
            except Exception as exc:
                result, outcome = self._error(response_headers, exc), "error"
            duration = (time.perf_counter() - t0) * 1000
            self.calls.append((name, event, outcome))
            if headers.get("x-amz-log-type") == "Tail":
                init = f"\tInit Duration: {init_ms:.2f} ms" if init_ms is not None else ""
                report = (
                    f"REPORT RequestId: {ctx.aws_request_id}\tDuration: {duration:.2f} ms\tBilled Duration: "
                    f"{math.ceil(duration + (init_ms or 0))} ms\tMemory Size: {fn.memory_size} MB\t"
                    f"Max Memory Used: 100 MB{init}\t\n"
                )
                response_headers["x-amz-log-result"] = base64.b64encode(report.encode()).decode()
            return result if outcome == "error" else json.dumps(result).encode()

    def _environment(self, name: str, fn: Any) -> float | None:
        """A new handler (cold start; returns its INIT ms) when the configuration changed, else None."""
        key = (fn.memory_size, json.dumps(getattr(fn, "environment_vars", {}), sort_keys=True))
        if name in self.factories and self._configs.get(name) != key:
            t0 = time.perf_counter()
            self.handlers[name] = self.factories[name]()
            self._configs[name] = key
            return (time.perf_counter() - t0) * 1000
        return None

    @staticmethod
    def _error(response_headers: Any, exc: Exception, error_type: str | None = None) -> bytes:
        response_headers["x-amz-function-error"] = "Unhandled"
        error = {"errorType": error_type or type(exc).__name__, "errorMessage": str(exc), "stackTrace": []}
        return json.dumps(error).encode()

    def install(self, monkeypatch: Any) -> None:
        seam = self

        def invoke(backend, function_name, qualifier, body, headers, response_headers):
            return seam.invoke(backend, function_name, qualifier, body, headers, response_headers)

        monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
        get_object = S3Response.get_object

        def failing_get_object(response):  # a GetObject request (moto's backend is also asked by other calls)
            key_name = response.parse_key_name()
            with seam._lock_reads:
                if key_name in seam.failing_reads:
                    seam.failing_reads.discard(key_name)
                    raise MissingKey(key=key_name)
            return get_object(response)

        monkeypatch.setattr(S3Response, "get_object", failing_get_object)
