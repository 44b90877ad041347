"""scikit-learn family: k-means, Gaussian mixture, PCA, logistic regression, linear SVM, random forest.

An artifact is a folder with ``model.joblib`` (a featuriser that turns text into vectors, and the
estimator) and ``meta.json``. Items carry raw ``text`` (featurised here) or ``features`` (a vector of
the estimator's input dimension, ``meta["feature_dim"]``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import joblib
import numpy as np
import scipy.sparse as sp

from mlinfer.models.base import ModelAdapter
from mlinfer.runtime.errors import ModelLoadError
from mlinfer.runtime.items import ItemInputError, validate_features, validate_text

ARTIFACT = "model.joblib"
META = "meta.json"


def _r(x: float) -> float:
    return round(float(x), 6)


class SklearnAdapter(ModelAdapter):
    """Serves any estimator trained by :mod:`mlinfer.build.sklearn_train`."""

    family = "sklearn"

    def __init__(self, name: str, artifact: dict[str, Any], meta: dict[str, Any]) -> None:
        super().__init__(name)
        self.featurizer = artifact["featurizer"]
        self.estimator = artifact["estimator"]
        self.kind: str = artifact["kind"]
        self.feature_dim: int = int(artifact["feature_dim"])
        self.sparse_input: bool = bool(artifact.get("sparse_input", False))
        self.meta = meta

    @classmethod
    def load(cls, path: Path, name: str) -> Self:
        try:
            artifact = joblib.load(path / ARTIFACT)
            meta = json.loads((path / META).read_text())
        except FileNotFoundError as exc:
            raise ModelLoadError(f"model {name!r}: no artifact at {path} ({exc.filename} missing)") from exc
        except Exception as exc:
            raise ModelLoadError(f"model {name!r}: cannot load {path}: {exc}") from exc
        return cls(name, artifact, meta)

    def validate(self, item: Mapping[str, Any]) -> tuple[str, Any]:
        has_text, has_features = "text" in item, "features" in item
        if has_text and has_features:
            raise ItemInputError("AmbiguousItem", "give either 'text' or 'features', not both")
        if has_text:
            return ("text", validate_text(item["text"]))
        if has_features:
            return ("features", validate_features(item["features"], dim=self.feature_dim))
        raise ItemInputError("MissingInput", "item has neither 'text' nor 'features'")

    def vectorize(self, inputs: list[tuple[str, Any]]) -> Any:
        """The estimator's input matrix for a batch of validated inputs (texts and vectors mixed)."""
        texts = [i for i, (kind, _) in enumerate(inputs) if kind == "text"]
        rows: list[Any] = [None] * len(inputs)
        if texts:
            x_text = self.featurizer.transform([inputs[i][1] for i in texts])
            for j, i in enumerate(texts):
                rows[i] = x_text[j]
        for i, (kind, value) in enumerate(inputs):
            if kind == "features":
                rows[i] = sp.csr_matrix(value) if self.sparse_input else value.reshape(1, -1)
        return sp.vstack(rows, format="csr") if self.sparse_input else np.vstack(rows)

    def predict(self, inputs: list[tuple[str, Any]], options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        if not inputs:
            return []
        x = self.vectorize(inputs)
        est = self.estimator
        if self.kind == "kmeans":
            dist = est.transform(x)
            labels = dist.argmin(axis=1)
            return [{"cluster": int(c), "distance": _r(d[c])} for c, d in zip(labels, dist, strict=True)]
        if self.kind == "gmm":
            proba = est.predict_proba(x)
            loglik = est.score_samples(x)
            return [
                {"component": int(p.argmax()), "probability": _r(p.max()), "log_likelihood": _r(ll)}
                for p, ll in zip(proba, loglik, strict=True)
            ]
        if self.kind == "pca":
            return [{"components": [_r(v) for v in row]} for row in est.transform(x)]
        classes = [str(c) for c in est.classes_]
        if hasattr(est, "predict_proba"):
            proba = est.predict_proba(x)
            return [
                {
                    "label": classes[int(p.argmax())],
                    "score": _r(p.max()),
                    "probabilities": {c: _r(v) for c, v in zip(classes, p, strict=True)},
                }
                for p in proba
            ]
        scores = est.decision_function(x)  # linear SVM: margins, not probabilities
        return [{"label": classes[int(s.argmax())], "score": _r(s.max())} for s in np.atleast_2d(scores)]
