"""Model adapters, one per family, and the registry of deployable models."""

from mlinfer.models.base import ModelAdapter
from mlinfer.models.registry import MODELS, ModelSpec, get_spec, load_model

__all__ = ["MODELS", "ModelAdapter", "ModelSpec", "get_spec", "load_model"]
