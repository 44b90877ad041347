"""The one test double at the AWS boundary: Lambda invocations from moto's Step Functions interpreter.

moto executes the real ASL definition (its interpreter comes from LocalStack) when its config sets
``stepfunctions.execute_state_machine``; with ``lambda.use_docker = False`` its Docker-free Lambda backend
routes every Invoke through ``LambdaSimpleBackend.invoke``. :class:`LambdaSeam` replaces that single
method: it dispatches by function name to the project's real handlers, in process, with a Lambda-like
context, and turns an exception into a Lambda function error the way the Lambda service does. Tests can
inject a throttle (HTTP 429) or a failure for a chosen invocation.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda_simple.models import LambdaSimpleBackend

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
    kind: str  # "throttle" or "error"
    times: int = 1


@dataclass
class LambdaSeam:
    handlers: dict[str, Callable[[dict, Any], Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    calls: list[tuple[str, dict, str]] = field(default_factory=list)  # (function, event, outcome)
    timeout_s: float = 900.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any):
        name = function_name.split(":")[6] if function_name.startswith("arn:") else function_name
        event = json.loads(body) if body else {}
        with self._lock:  # one execution environment per function: one request at a time
            for fault in self.faults:
                if fault.times > 0 and fault.when(name, event):
                    fault.times -= 1
                    self.calls.append((name, event, fault.kind))
                    if fault.kind == "throttle":
                        raise TooManyRequests()
                    return self._error(response_headers, RuntimeError(f"injected failure in {name}"))
            handler = self.handlers.get(name)
            if handler is None:
                raise LambdaClientError("ResourceNotFoundException", f"Function not found: {name}")
            try:
                result = handler(event, LocalContext(function_name=name, timeout_s=self.timeout_s))
            except Exception as exc:
                self.calls.append((name, event, "error"))
                return self._error(response_headers, exc)
            self.calls.append((name, event, "ok"))
            return json.dumps(result).encode()

    @staticmethod
    def _error(response_headers: Any, exc: Exception) -> bytes:
        response_headers["x-amz-function-error"] = "Unhandled"
        return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc), "stackTrace": []}).encode()

    def install(self, monkeypatch: Any) -> None:
        seam = self

        def invoke(backend, function_name, qualifier, body, headers, response_headers):
            return seam.invoke(backend, function_name, qualifier, body, headers, response_headers)

        monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
