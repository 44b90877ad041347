"""Export a PyTorch module to ONNX (build time only) without the exporter's known, checked warnings.

The TorchScript exporter (``dynamo=False``) is used on purpose: its graphs are the ones ONNX Runtime's
transformer optimiser fuses (attention, LayerNorm, GELU), and every export here is checked against the
PyTorch module on inputs of other shapes, which is what its tracer warnings ask for. Its deprecation
notice and those warnings would otherwise reach every ``mlinfer export`` and test run.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def export_onnx(module: Any, args: tuple, path: Path | str, **kwargs: Any) -> None:
    """``torch.onnx.export(..., dynamo=False)``, with its deprecation and tracer warnings silenced."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r"Exporting aten::index operator", category=UserWarning)
        torch.onnx.export(module, args, str(path), dynamo=False, **kwargs)
