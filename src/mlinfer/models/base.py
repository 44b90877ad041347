"""The adapter interface every model family implements (scikit-learn estimator style).

adapter = SklearnAdapter.load(Path("/opt/ml/model/kmeans"), name="kmeans")
inputs = [adapter.validate(item) for item in items]   # ItemInputError per bad item
outputs = adapter.predict(inputs)                      # one JSON-able result per input
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self


class ModelAdapter(ABC):
    """Load a model from a directory; validate items; predict a batch."""

    family: ClassVar[str]

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    @abstractmethod
    def load(cls, path: Path, name: str) -> Self:
        """Load the artifact in ``path`` (raise ``ModelLoadError`` if it is missing or unreadable)."""

    @abstractmethod
    def validate(self, item: Mapping[str, Any]) -> Any:
        """Turn one item into a model input, or raise ``ItemInputError`` with a reason."""

    @abstractmethod
    def predict(self, inputs: list[Any], options: Mapping[str, Any] | None = None) -> list[Any]:
        """Predict a batch of validated inputs; one JSON-serialisable result per input.

        ``options`` are the event's ``options`` (e.g. ``max_new_tokens`` for generation).
        """

    def drain_metrics(self) -> list[tuple[str, str, float]]:
        """The family's own metrics for the batches predicted since the last call, as ``(name, unit, value)``
        with a CloudWatch unit name (e.g. tokens per second for generation); none by default."""
        return []
