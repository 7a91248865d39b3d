"""Intent classifier with out-of-scope detection: one trainer for every tenant and the CLI.

Model (measured on Banking77 5-fold CV and CLINC150; see ``evals/``):

- features: the all-MiniLM-L6-v2 sentence embedding (384 dims, L2-normalised) and TF-IDF of word
  1–2-grams and character 2–5-grams (``char_wb``), sublinear tf;
- two linear models: a linear SVM on ``[3·embedding, word tf-idf, char tf-idf]`` and a logistic
  regression on the embedding alone;
- ensemble: ``p(c) = 0.5·softmax(5·svm_scores)(c) + 0.5·logreg_proba(c)``; the intent is the
  argmax and its confidence ``max p``;
- out-of-scope: when ``max p`` is below the calibrated threshold the answer is ``out_of_scope``;
  rows labelled ``out_of_scope`` in training data also form a class of their own.

Frozen sentence embeddings with a linear head are a strong intent baseline (Casanueva et al. 2020,
Banking77); lexical n-grams fix many of its confusions between close intents. The threshold is
calibrated to the lowest value that reaches the wanted out-of-scope recall on calibration data, so
in-scope accuracy is given up only as far as needed (Larson et al. 2019, CLINC150).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import scipy.sparse as sp
from langchain_core.embeddings import Embeddings
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

logger = logging.getLogger(__name__)

OUT_OF_SCOPE = "out_of_scope"
EMBEDDING_WEIGHT = 3.0
TEMPERATURE = 5.0
ALPHA = 0.5


@dataclass(frozen=True)
class IntentPrediction:
    """One classification.

    Attributes:
        intent: the predicted label, or ``out_of_scope``.
        confidence: the ensemble probability of the best in-scope label, in [0, 1].
        ranking: the top three ``(label, probability)`` pairs, best first.
    """

    intent: str
    confidence: float
    ranking: list[tuple[str, float]]


def read_labelled_csv(path: Path) -> tuple[list[str], list[str]]:
    """Read ``text,category`` rows (rows labelled ``out_of_scope`` are out-of-scope examples).

    Raises:
        ValueError: the file lacks a ``text`` or ``category`` column, or has no rows.
    """
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"text", "category"} <= set(reader.fieldnames):
            raise ValueError(f"{path} must have columns text,category")
        rows = [(r["text"].strip(), r["category"].strip()) for r in reader if r["text"].strip()]
    if not rows:
        raise ValueError(f"{path} has no rows")
    return [t for t, _ in rows], [c for _, c in rows]


def _softmax(z: np.ndarray, t: float) -> np.ndarray:
    z = z * t
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


class IntentClassifier:
    """The fitted ensemble (see module docstring). Build with :meth:`train` or :meth:`load`."""

    def __init__(
        self,
        embeddings: Embeddings,
        parts: dict[str, Any],
        oos_threshold: float | None = None,
    ) -> None:
        self._embeddings = embeddings
        self._parts = parts
        self.oos_threshold = oos_threshold

    @classmethod
    def train(cls, embeddings: Embeddings, texts: list[str], labels: list[str]) -> IntentClassifier:
        """Fit on labelled utterances (``out_of_scope`` rows become their own class).

        Raises:
            ValueError: fewer than two labels.
        """
        if len(set(labels)) < 2:
            raise ValueError("training data needs at least two labels")
        emb = np.asarray(embeddings.embed_documents(texts), dtype=np.float32)
        word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        char = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 5),
            sublinear_tf=True,
            min_df=2 if len(texts) > 500 else 1,
        )
        x = sp.hstack(
            [
                sp.csr_matrix(emb * EMBEDDING_WEIGHT),
                word.fit_transform(texts),
                char.fit_transform(texts),
            ]
        ).tocsr()
        svm = LinearSVC(C=0.5).fit(x, labels)
        logreg = LogisticRegression(C=10.0, max_iter=3000).fit(emb, labels)
        return cls(embeddings, {"word": word, "char": char, "svm": svm, "logreg": logreg})

    @property
    def labels(self) -> list[str]:
        """The labels the model knows."""
        return [str(label) for label in self._parts["svm"].classes_]

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Ensemble probabilities, shape ``(len(texts), len(labels))``, rows summing to 1."""
        if len(texts) == 1:
            emb = np.asarray([self._embeddings.embed_query(texts[0])], dtype=np.float32)
        else:
            emb = np.asarray(self._embeddings.embed_documents(texts), dtype=np.float32)
        p = self._parts
        x = sp.hstack(
            [
                sp.csr_matrix(emb * EMBEDDING_WEIGHT),
                p["word"].transform(texts),
                p["char"].transform(texts),
            ]
        ).tocsr()
        out: np.ndarray = ALPHA * _softmax(p["svm"].decision_function(x), TEMPERATURE) + (
            1 - ALPHA
        ) * p["logreg"].predict_proba(emb)
        return out

    def _decide(self, probs: np.ndarray) -> list[IntentPrediction]:
        labels = self.labels
        oos_col = labels.index(OUT_OF_SCOPE) if OUT_OF_SCOPE in labels else None
        preds = []
        for row in probs:
            order = np.argsort(row)[::-1]
            ranking = [(labels[i], round(float(row[i]), 4)) for i in order[:3]]
            best = next(i for i in order if i != oos_col)
            confidence = float(row[best])
            intent = labels[int(order[0])]
            if self.oos_threshold is not None and confidence < self.oos_threshold:
                intent = OUT_OF_SCOPE
            preds.append(IntentPrediction(intent, round(confidence, 4), ranking))
        return preds

    def predict(self, text: str) -> IntentPrediction:
        """Classify one utterance (its embedding is cached by the embedder)."""
        return self._decide(self.probabilities([text]))[0]

    def predict_many(self, texts: list[str], batch: int = 256) -> list[IntentPrediction]:
        """Classify many utterances in batches."""
        out: list[IntentPrediction] = []
        for i in range(0, len(texts), batch):
            out += self._decide(self.probabilities(texts[i : i + batch]))
        return out

    def calibrate(self, texts: list[str], labels: list[str], min_oos_recall: float = 0.85) -> float:
        """Set the out-of-scope threshold from labelled calibration data.

        Picks the smallest threshold whose out-of-scope recall on the data reaches
        ``min_oos_recall`` (so in-scope accuracy drops no further than needed).

        Returns:
            The threshold (also stored on the model).

        Raises:
            ValueError: the data has no ``out_of_scope`` rows.
        """
        self.oos_threshold = self.threshold_for(self.probabilities(texts), labels, min_oos_recall)
        return self.oos_threshold

    def threshold_for(self, probs: np.ndarray, labels: list[str], min_oos_recall: float) -> float:
        """The smallest threshold reaching ``min_oos_recall`` on rows with these probabilities.

        Raises:
            ValueError: no ``out_of_scope`` rows among ``labels``.
        """
        saved, self.oos_threshold = self.oos_threshold, None
        preds = self._decide(probs)
        self.oos_threshold = saved
        oos = [i for i, label in enumerate(labels) if label == OUT_OF_SCOPE]
        if not oos:
            raise ValueError("calibration data needs out_of_scope rows")
        caught = {i for i in oos if preds[i].intent == OUT_OF_SCOPE}
        candidates = sorted(preds[i].confidence for i in oos if i not in caught)
        needed = int(np.ceil(min_oos_recall * len(oos))) - len(caught)
        threshold = 0.0 if needed <= 0 else candidates[needed - 1] + 1e-6
        return round(float(threshold), 6)

    def save(self, directory: Path, meta: dict[str, Any] | None = None) -> None:
        """Write the model to ``directory`` (``model.joblib`` + ``model.json``)."""
        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(self._parts, directory / "model.joblib")
        info = {"labels": self.labels, "oos_threshold": self.oos_threshold,
                "embedding": "all-MiniLM-L6-v2", **(meta or {})}  # fmt: skip
        (directory / "model.json").write_text(json.dumps(info, indent=2))

    @classmethod
    def load(cls, directory: Path, embeddings: Embeddings) -> IntentClassifier:
        """Read a model written by :meth:`save`.

        Raises:
            FileNotFoundError: no model in ``directory``.
        """
        info = json.loads((directory / "model.json").read_text())
        return cls(embeddings, joblib.load(directory / "model.joblib"), info["oos_threshold"])


class IntentModels:
    """The intent models of a process's tenants, loaded (or trained) once each, thread-safe.

    Models are cached on disk under ``model_dir/<tenant>-intents-<sha>/``, keyed by the SHA-256 of
    the training files' contents, so a changed file retrains and nothing is ever downloaded; in
    memory, one model per tenant for the life of the process (restart to pick up new data).

    Args:
        model_dir: where trained models are kept (``DATA_DIR/models``).
        embeddings: the sentence embeddings the models read.
    """

    def __init__(self, model_dir: Path, embeddings: Embeddings) -> None:
        self.model_dir = model_dir
        self.embeddings = embeddings
        self._models: dict[str, IntentClassifier] = {}
        self._lock = threading.Lock()

    def loaded(self, tenant_id: str) -> IntentClassifier | None:
        """The tenant's classifier if it is in memory already (never blocks)."""
        return self._models.get(tenant_id)

    def get(self, tenant_id: str, training_files: Callable[[], list[Path]]) -> IntentClassifier:
        """The tenant's classifier: from memory, from the model cache on disk, or trained now.

        Blocking (file reads, maybe training for tens of seconds): call it in a thread.

        Args:
            tenant_id: the tenant.
            training_files: gives the training files (called only when the model is loaded).

        Raises:
            NotFoundError: a training file is missing.
        """
        model = self._models.get(tenant_id)
        if model is not None:
            return model
        with self._lock:
            if tenant_id not in self._models:
                self._models[tenant_id] = self._load_or_train(tenant_id, training_files())
            return self._models[tenant_id]

    def _load_or_train(self, tenant_id: str, training_files: list[Path]) -> IntentClassifier:
        digest_of = hashlib.sha256()
        for path in training_files:
            digest_of.update(path.read_bytes())
        digest = digest_of.hexdigest()[:16]
        path = self.model_dir / f"{tenant_id}-intents-{digest}"
        if (path / "model.json").is_file():
            return IntentClassifier.load(path, self.embeddings)
        texts: list[str] = []
        labels: list[str] = []
        for training_file in training_files:
            more_texts, more_labels = read_labelled_csv(training_file)
            texts += more_texts
            labels += more_labels
        clf = IntentClassifier.train(self.embeddings, texts, labels)
        clf.save(path, {"tenant": tenant_id, "training_sha256": digest, "n": len(texts)})
        logger.info("intent_model_trained", extra={"tenant_id": tenant_id, "n": len(texts)})
        return clf
