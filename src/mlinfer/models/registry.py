"""Which models exist, which family adapter serves each, and where its artifact lives.

Adding an algorithm = one :class:`ModelSpec` line here (and an adapter if it is a new family).
Adapters are imported lazily so that a function imports only its own family's libraries.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlinfer.models.base import ModelAdapter
from mlinfer.runtime.errors import UnknownModelError

#: Where images put model artifacts (``<MODEL_DIR>/<model name>/``); local runs use ``./models``.
DEFAULT_MODEL_DIR = "/opt/ml/model"


@dataclass(frozen=True)
class ModelSpec:
    """A deployable model: its name, family adapter (``module:Class``) and training options."""

    name: str
    family: str
    adapter: str
    task: str
    options: dict[str, Any] = field(default_factory=dict)

    def adapter_class(self) -> type[ModelAdapter]:
        module, _, cls = self.adapter.partition(":")
        return getattr(importlib.import_module(module), cls)


_SK = "mlinfer.models.sklearn:SklearnAdapter"
_BERT = "mlinfer.models.bert:BertAdapter"
_LLAMA = "mlinfer.models.llama:LlamaAdapter"
_RESNET = "mlinfer.models.resnet:ResNetAdapter"
_RESNET_ID = {"model_id": "microsoft/resnet-50", "artifact": "resnet50"}

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("kmeans", "clustering", _SK, "clustering", {"estimator": "kmeans"}),
        ModelSpec("gmm", "clustering", _SK, "clustering", {"estimator": "gmm"}),
        ModelSpec("pca", "clustering", _SK, "decomposition", {"estimator": "pca"}),
        ModelSpec("logreg", "classifiers", _SK, "classification", {"estimator": "logreg"}),
        ModelSpec("svm", "classifiers", _SK, "classification", {"estimator": "svm"}),
        ModelSpec("random_forest", "classifiers", _SK, "classification", {"estimator": "random_forest"}),
        ModelSpec("naive_bayes", "classifiers", _SK, "classification", {"estimator": "naive_bayes"}),
        ModelSpec(
            "distilbert",
            "transformers",
            _BERT,
            "text-classification",
            {"model_id": "distilbert-base-uncased-finetuned-sst-2-english"},
        ),
        ModelSpec(
            "bert_base", "transformers", _BERT, "text-classification", {"model_id": "textattack/bert-base-uncased-imdb"}
        ),
        ModelSpec(
            "tinyllama_chat", "llama", _LLAMA, "text-generation", {"model_id": "TinyLlama/TinyLlama-1.1B-Chat-v1.0"}
        ),
        ModelSpec("tinyllama_v0", "llama", _LLAMA, "text-generation", {"model_id": "Maykeye/TinyLLama-v0"}),
        ModelSpec("resnet50", "resnet", _RESNET, "image-classification", {**_RESNET_ID, "stage": None}),
        *[
            ModelSpec(f"resnet50_stage{k}", "resnet", _RESNET, "image-classification-stage", {**_RESNET_ID, "stage": k})
            for k in range(5)
        ],
    ]
}


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name``; :class:`UnknownModelError` lists the known names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None


def model_dir() -> Path:
    """Root folder of model artifacts: ``MODEL_DIR`` or :data:`DEFAULT_MODEL_DIR`."""
    return Path(os.environ.get("MODEL_DIR", DEFAULT_MODEL_DIR))


def artifact_path(name: str, root: Path | None = None) -> Path:
    """``<root>/<artifact>``: a model's own folder, or the one it shares (the ResNet stages share one)."""
    return (root or model_dir()) / get_spec(name).options.get("artifact", name)


def is_trainable(name: str) -> bool:
    """Whether ``mlinfer train`` makes this model (the scikit-learn families); the others are exported."""
    return get_spec(name).adapter == _SK


def prepare_command(name: str, root: Path) -> str:
    """The command that puts a servable artifact for ``name`` under ``root`` (what to run when it is missing)."""
    spec, out = get_spec(name), artifact_path(name, root)
    if is_trainable(name):
        return f"mlinfer train --models {name} --out {root}"
    if spec.family == "resnet":
        return f"mlinfer export --model {name} --source <folder or Hub id> --out {out}   (or --random)"
    return f"mlinfer export --model {name} --source <Hugging Face model folder> --out {out}"


def missing_model_advice(name: str, root: Path) -> str:
    """Why a model cannot be served from ``root``, and a command that fixes it."""
    what = "trained" if is_trainable(name) else "exported"
    return f"no {what} model at {artifact_path(name, root)}; make it first: {prepare_command(name, root)}"


def load_model(name: str, root: Path | None = None) -> ModelAdapter:
    """Load model ``name`` from its artifact folder with its family adapter."""
    return get_spec(name).adapter_class().load(artifact_path(name, root), name=name)
