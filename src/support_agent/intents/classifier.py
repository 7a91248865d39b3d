"""Embedding intent classifier: frozen all-MiniLM-L6-v2 sentence vectors + logistic regression.

Trained on a tenant pack's labelled utterances (``intents.csv``, columns ``text,category``). The
model is built the first time a tenant's classifier is needed and cached under
``DATA_DIR/models/<tenant>-intents-<sha>.joblib``, keyed by the SHA-256 of the training file, so a
changed file retrains and nothing is ever downloaded. Frozen sentence embeddings with a linear head
are a strong intent baseline (Casanueva et al. 2020, "Efficient Intent Detection with Dual Sentence
Encoders", on Banking77).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from langchain_core.embeddings import Embeddings
from sklearn.linear_model import LogisticRegression

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntentPrediction:
    """One classification.

    Attributes:
        intent: the predicted label.
        confidence: its probability in [0, 1].
        ranking: the top three ``(label, probability)`` pairs, best first.
    """

    intent: str
    confidence: float
    ranking: list[tuple[str, float]]


def read_labelled_csv(path: Path) -> tuple[list[str], list[str]]:
    """Read ``text,category`` rows.

    Raises:
        ValueError: the file lacks a ``text`` or ``category`` column.
    """
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"text", "category"} <= set(reader.fieldnames):
            raise ValueError(f"{path} must have columns text,category")
        rows = [(r["text"], r["category"]) for r in reader if r["text"].strip()]
    return [t for t, _ in rows], [c for _, c in rows]


class IntentClassifier:
    """Logistic regression over L2-normalised sentence embeddings.

    Args:
        embeddings: the sentence embedder (must match between training and prediction).
        model: a fitted scikit-learn ``LogisticRegression``.
    """

    def __init__(self, embeddings: Embeddings, model: LogisticRegression) -> None:
        self._embeddings = embeddings
        self._model = model

    @classmethod
    def train(
        cls, embeddings: Embeddings, texts: list[str], labels: list[str], c: float = 10.0
    ) -> IntentClassifier:
        """Fit on labelled utterances.

        Args:
            embeddings: sentence embedder.
            texts: utterances.
            labels: one label per utterance.
            c: inverse L2 regularisation strength of the logistic regression.
        """
        x = np.asarray(embeddings.embed_documents(texts), dtype=np.float32)
        model = LogisticRegression(C=c, max_iter=2000)
        model.fit(x, labels)
        return cls(embeddings, model)

    @property
    def labels(self) -> list[str]:
        """The labels the model knows."""
        return [str(label) for label in self._model.classes_]

    def predict(self, text: str) -> IntentPrediction:
        """Classify one utterance (its embedding is cached by the embedder)."""
        x = np.asarray([self._embeddings.embed_query(text)], dtype=np.float32)
        probs = self._model.predict_proba(x)[0]
        order = np.argsort(probs)[::-1][:3]
        ranking = [(str(self._model.classes_[i]), round(float(probs[i]), 4)) for i in order]
        return IntentPrediction(intent=ranking[0][0], confidence=ranking[0][1], ranking=ranking)

    def save(self, path: Path) -> None:
        """Persist the fitted head (the embedder is not pickled)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self._model, path)


_cache: dict[str, IntentClassifier] = {}
_lock = threading.Lock()


def classifier_for(
    tenant_id: str, training_file: Path, model_dir: Path, embeddings: Embeddings
) -> IntentClassifier:
    """The tenant's classifier: from memory, from the model cache on disk, or trained now.

    Args:
        tenant_id: tenant whose pack the data belongs to.
        training_file: the ``intents.csv`` to train on.
        model_dir: where fitted models are cached.
        embeddings: the sentence embedder.
    """
    digest = hashlib.sha256(training_file.read_bytes()).hexdigest()[:16]
    key = f"{tenant_id}-intents-{digest}"
    with _lock:
        if key in _cache:
            return _cache[key]
        path = model_dir / f"{key}.joblib"
        if path.is_file():
            clf = IntentClassifier(embeddings, joblib.load(path))
        else:
            texts, labels = read_labelled_csv(training_file)
            clf = IntentClassifier.train(embeddings, texts, labels)
            clf.save(path)
            logger.info("intent_model_trained", extra={"tenant_id": tenant_id, "n": len(texts)})
        _cache[key] = clf
        return clf
