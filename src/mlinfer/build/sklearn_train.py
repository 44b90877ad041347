"""Train the scikit-learn models on labelled texts; run at image build time and by ``mlinfer train``.

python -m mlinfer.build.sklearn_train --data data.jsonl --out /opt/ml/model kmeans gmm pca
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer
from sklearn.svm import LinearSVC

from mlinfer.models.registry import MODELS
from mlinfer.models.sklearn import ARTIFACT, META

SEED = 0
EMBED_DIM = 100  # dense text embedding (TF-IDF + truncated SVD) for estimators that need dense input
SPARSE_KINDS = {"logreg", "svm", "naive_bayes"}  # linear text classifiers work best on the sparse TF-IDF itself
SUPERVISED_KINDS = {"logreg", "svm", "random_forest", "naive_bayes"}  # trained on labels, scored on a held-out 20 %


def read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of a JSONL file, gzip-compressed or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
                if limit is not None and len(rows) >= limit:
                    break
    return rows


def _tfidf() -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=50_000, sublinear_tf=True)


def _estimator(kind: str, n_classes: int) -> Any:
    return {
        "kmeans": lambda: KMeans(n_clusters=n_classes, n_init=4, random_state=SEED),
        "gmm": lambda: GaussianMixture(n_components=n_classes, covariance_type="diag", random_state=SEED),
        "pca": lambda: PCA(n_components=16, random_state=SEED),
        "logreg": lambda: LogisticRegression(max_iter=2000, C=4.0),
        "svm": lambda: LinearSVC(C=0.5, random_state=SEED),
        "random_forest": lambda: RandomForestClassifier(
            n_estimators=100, min_samples_leaf=2, max_depth=30, n_jobs=1, random_state=SEED
        ),
        "naive_bayes": lambda: MultinomialNB(alpha=0.1),
    }[kind]()


def train(kind: str, texts: list[str], labels: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit featuriser + estimator; return ``(artifact, metrics)``. Classifiers hold out 20 % to score."""
    supervised = kind in SUPERVISED_KINDS
    n_classes = len(set(labels))
    fit_texts, fit_labels, test_texts, test_labels = texts, labels, [], []
    if supervised:
        fit_texts, test_texts, fit_labels, test_labels = train_test_split(
            texts, labels, test_size=0.2, random_state=SEED, stratify=labels
        )
    if kind in SPARSE_KINDS:
        featurizer = _tfidf().fit(fit_texts)
    else:
        x0 = _tfidf().fit_transform(fit_texts)
        n_comp = max(2, min(EMBED_DIM, x0.shape[1] - 1))
        featurizer = make_pipeline(_tfidf(), TruncatedSVD(n_components=n_comp, random_state=SEED), Normalizer())
        featurizer.fit(fit_texts)
    x = featurizer.transform(fit_texts)
    est = _estimator(kind, n_classes)
    est.fit(x, fit_labels) if supervised else est.fit(x)
    metrics: dict[str, Any] = {"train_items": len(fit_texts)}
    if supervised:
        pred = est.predict(featurizer.transform(test_texts))
        metrics.update(test_items=len(test_texts), accuracy=round(float(np.mean(pred == np.array(test_labels))), 4))
    feature_dim = x.shape[1]
    artifact = {
        "featurizer": featurizer,
        "estimator": est,
        "kind": kind,
        "feature_dim": feature_dim,
        "sparse_input": kind in SPARSE_KINDS,
    }
    return artifact, metrics


def _drop_stop_words(featurizer: Any) -> None:
    """``TfidfVectorizer.stop_words_`` only serves introspection and can be most of the pickle."""
    for step in getattr(featurizer, "steps", [(None, featurizer)]):
        if hasattr(step[1], "stop_words_"):
            step[1].stop_words_ = None


def save(out: Path, name: str, artifact: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``<out>/<name>/model.joblib`` and ``meta.json``."""
    _drop_stop_words(artifact["featurizer"])
    target = out / name
    target.mkdir(parents=True, exist_ok=True)
    joblib.dump(artifact, target / ARTIFACT, compress=3)
    (target / META).write_text(json.dumps(meta, indent=2) + "\n")
    return target


def train_and_save(names: list[str], data: Path, out: Path, limit: int | None = None) -> dict[str, dict]:
    """Train each named model on ``data`` (JSONL with ``text`` and ``label``) and save it under ``out``."""
    rows = [r for r in read_jsonl(data, limit) if isinstance(r.get("text"), str) and r["text"].strip()]
    texts, labels = [r["text"] for r in rows], [str(r["label"]) for r in rows]
    report = {}
    for name in names:
        kind = MODELS[name].options["estimator"]
        t0 = time.perf_counter()
        artifact, metrics = train(kind, texts, labels)
        meta = {
            "name": name,
            "kind": kind,
            "feature_dim": artifact["feature_dim"],
            "classes": sorted(set(labels)),
            "sklearn_version": sklearn.__version__,
            "data": data.name,
            "train_seconds": round(time.perf_counter() - t0, 2),
            **metrics,
        }
        save(out, name, artifact, meta)
        report[name] = meta
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="JSONL(.gz) with 'text' and 'label'")
    parser.add_argument("--out", type=Path, required=True, help="artifact root; one folder per model")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N rows only")
    parser.add_argument(
        "models", nargs="+", choices=[n for n, s in MODELS.items() if s.adapter.endswith("SklearnAdapter")]
    )
    args = parser.parse_args(argv)
    for meta in train_and_save(args.models, args.data, args.out, args.limit).values():
        print(json.dumps(meta))


if __name__ == "__main__":
    main()
