"""Each scikit-learn algorithm, trained on real texts through the real training and loading code."""

from __future__ import annotations

import numpy as np
import pytest

from mlinfer.models.registry import load_model

from ..conftest import SKLEARN_MODELS

TEXTS = ["I am so happy and excited today", "this makes me furious", "I'm scared of the dark", "on the bus to work"]


@pytest.mark.parametrize("name", SKLEARN_MODELS)
def test_predictions_are_well_formed_and_deterministic(name, model_root):
    model = load_model(name, model_root)
    inputs = [model.validate({"id": i, "text": t}) for i, t in enumerate(TEXTS)]
    first = model.predict(inputs)
    assert len(first) == len(TEXTS)
    again = load_model(name, model_root).predict(inputs)  # a fresh load gives the same answers
    assert first == again
    one_by_one = [model.predict([x])[0] for x in inputs]  # batching does not change results
    assert one_by_one == first
    for out in first:
        if name == "kmeans":
            assert 0 <= out["cluster"] < 8 and out["distance"] >= 0
        elif name == "gmm":
            assert 0 <= out["component"] < 8 and 0 <= out["probability"] <= 1
        elif name == "pca":
            assert len(out["components"]) == 16 and all(np.isfinite(out["components"]))
        else:
            assert out["label"] in model.meta["classes"]
            if name != "svm":
                assert sum(out["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("name", [m for m in SKLEARN_MODELS if m != "svm"])
def test_feature_vectors_match_text_path(name, model_root):
    """A numeric vector equal to the text's featurisation gives the same prediction as the text."""
    model = load_model(name, model_root)
    text_input = model.validate({"id": 0, "text": TEXTS[0]})
    vector = model.vectorize([text_input])
    dense = vector.toarray()[0] if hasattr(vector, "toarray") else vector[0]
    assert len(dense) == model.feature_dim
    feat_input = model.validate({"id": 0, "features": dense.tolist()})
    assert model.predict([feat_input]) == model.predict([text_input])


def test_classifiers_learn_the_real_labels(model_root):
    """Held-out accuracy on real texts is well above chance (1/8 on the emotion data) for every classifier."""
    for name in ["logreg", "svm", "random_forest", "naive_bayes"]:
        meta = load_model(name, model_root).meta
        assert meta["test_items"] > 0 and meta["accuracy"] > 0.35, meta
