"""The ONNX Runtime session every ONNX-backed adapter uses (the BERT and ResNet families)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlinfer.runtime.threads import thread_count


def cpu_session(path: Path) -> Any:
    """An ``InferenceSession`` on the CPU with all graph optimisations and as many threads as the
    function's vCPU share (one inter-op thread: the graphs here are a single chain)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = thread_count()
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
