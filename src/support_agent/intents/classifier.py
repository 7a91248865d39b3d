"""Intent classifier with out-of-scope detection: one trainer for every tenant and the CLI.

Model (measured on Banking77 5-fold CV and CLINC150; see ``evals/``):

- features: the all-MiniLM-L6-v2 sentence embedding (384 dims, L2-normalised) and TF-IDF of word
  1–2-grams and character 2–5-grams (``char_wb``), sublinear tf;
- two linear models: a linear SVM on ``[3·embedding, word tf-idf, char tf-idf]`` and a logistic
  regression on the embedding alone;
- ensemble: ``p(c) = 0.5·softmax(5·svm_scores)(c) + 0.5·logreg_proba(c)``; the intent is the
  argmax and its confidence ``max p``;
- out-of-scope, two ways. Rows labelled ``out_of_scope`` in training data form a class of their
  own. Without a separator, when ``max p`` is below the calibrated threshold the answer is
  ``out_of_scope``. With one (:meth:`IntentClassifier.train_with_separator`, for training data
  with out-of-scope rows), a binary in-scope model decides: a logistic regression (standardised
  inputs, balanced classes, C = 0.1) on seven features of the utterance, :data:`SEPARATOR_FEATURES`:
  the ensemble's ``max p`` over in-scope labels, its margin to the second, the out-of-scope
  class's ``p``, the cosine similarity to the nearest and the mean over the 5 nearest in-scope
  training utterances in embedding space, and the same two over word TF-IDF vectors. It is
  trained on *out-of-fold* features (each row's features from ensemble models that did not see
  it), so it learns how unseen utterances look, and its threshold is calibrated on its own
  out-of-fold scores. Its score ``in_scope`` is P(in scope) with balanced classes.

Frozen sentence embeddings with a linear head are a strong intent baseline (Casanueva et al. 2020,
Banking77); lexical n-grams fix many of its confusions between close intents. The threshold is
calibrated to the lowest value that reaches the wanted out-of-scope recall on calibration data, so
in-scope accuracy is given up only as far as needed (Larson et al. 2019, CLINC150). Distances to
the nearest training utterances are a strong out-of-distribution signal (Sun et al. 2022, "Out-of-
distribution detection with deep nearest neighbors"); training the rejecter on a few hundred
out-of-scope examples written for it is outlier exposure (Hendrycks et al. 2019).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import shutil
import tempfile
import threading
import uuid
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
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

logger = logging.getLogger(__name__)

OUT_OF_SCOPE = "out_of_scope"
EMBEDDING_WEIGHT = 3.0
TEMPERATURE = 5.0
ALPHA = 0.5
#: The in-scope separator's inputs, in column order (see the module docstring).
SEPARATOR_FEATURES = ("max_p", "margin", "p_out_of_scope", "nn1_cos", "nn5_cos", "word_nn1_cos",
                      "word_nn5_cos")  # fmt: skip


@dataclass(frozen=True)
class IntentPrediction:
    """One classification.

    Attributes:
        intent: the predicted label, or ``out_of_scope``.
        confidence: the ensemble probability of the best in-scope label, in [0, 1].
        ranking: the top three ``(label, probability)`` pairs, best first.
        in_scope: the separator's P(in scope) in [0, 1], or ``None`` for a model without one.
        best_in_scope: the best in-scope label (what ``intent`` is unless rejected).
    """

    intent: str
    confidence: float
    ranking: list[tuple[str, float]]
    in_scope: float | None = None
    best_in_scope: str | None = None


@dataclass(frozen=True)
class SeparatorReport:
    """What training a separator measured out-of-fold on the training data.

    Attributes:
        folds: cross-validation folds.
        min_oos_recall: the out-of-scope recall the threshold was calibrated to.
        threshold: the calibrated threshold on ``in_scope``.
        in_scope_accuracy: out-of-fold accuracy on in-scope rows at the threshold (a rejected
            in-scope row counts as an error).
        oos_recall: out-of-fold recall on the calibration out-of-scope rows at the threshold.
        curve: ``(threshold, in_scope_accuracy, oos_recall)`` at 101 thresholds from 0 to 1.
    """

    folds: int
    min_oos_recall: float
    threshold: float
    in_scope_accuracy: float
    oos_recall: float
    curve: list[tuple[float, float, float]]


def operating_curve(
    scores: np.ndarray, best: np.ndarray, labels: np.ndarray, steps: int = 101
) -> list[tuple[float, float, float]]:
    """In-scope accuracy and out-of-scope recall at evenly spaced thresholds on ``scores``.

    Args:
        scores: ``in_scope`` per row (rejected when below the threshold).
        best: the best in-scope label per row.
        labels: the true labels (``out_of_scope`` for out-of-scope rows).
        steps: thresholds from 0 to 1 inclusive.

    Returns:
        ``[(threshold, in_scope_accuracy, oos_recall)]`` (``nan`` where a side has no rows).
    """
    oos = labels == OUT_OF_SCOPE
    out = []
    for t in np.linspace(0.0, 1.0, steps):
        kept = scores >= t
        acc = float(((best == labels) & kept)[~oos].mean()) if (~oos).any() else float("nan")
        rec = float((~kept)[oos].mean()) if oos.any() else float("nan")
        out.append((round(float(t), 4), round(acc, 4), round(rec, 4)))
    return out


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


class _Tfidf:
    """One text's TF-IDF row as a fitted ``TfidfVectorizer`` computes it.

    For ``sublinear_tf``, ``norm="l2"``, ``use_idf``: counts of the analyzer's in-vocabulary
    terms, ``1 + ln(count)``, times ``idf_``, L2-normalised (scikit-learn's ``TfidfTransformer``).
    """

    def __init__(self, vectorizer: TfidfVectorizer) -> None:
        self.analyze = vectorizer.build_analyzer()
        self.vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.idf: np.ndarray = vectorizer.idf_
        self.size = len(self.vocabulary)

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """``(column indices, values)`` of the text's non-zero TF-IDF entries."""
        counts: dict[int, int] = {}
        for term in self.analyze(text):
            col = self.vocabulary.get(term)
            if col is not None:
                counts[col] = counts.get(col, 0) + 1
        cols = np.fromiter(counts, dtype=np.int64, count=len(counts))
        values = (1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64))) * self.idf[cols]
        norm = np.sqrt(values @ values)
        return cols, values / norm if norm > 0 else values


@dataclass
class RowScorer:
    """The ensemble's scores for one text, computed from the fitted parameters.

    scikit-learn validates its inputs on every ``transform``/``decision_function``/
    ``predict_proba`` call: about 3 ms of CPU per turn for one text here, most of the
    classifier's cost. This computes the same numbers directly: TF-IDF rows (:class:`_Tfidf`),
    SVM scores ``coef · x + intercept`` over the non-zero columns, logistic probabilities
    ``softmax(coef · emb + intercept)`` (multinomial). ``tests/test_classify.py`` checks they
    equal scikit-learn's. Used for multi-class models whose vectorizers are configured as
    :meth:`IntentClassifier._fit` does; :meth:`of` returns ``None`` otherwise.
    """

    word: _Tfidf
    char: _Tfidf
    svm_coef: np.ndarray
    svm_intercept: np.ndarray
    lr_coef: np.ndarray
    lr_intercept: np.ndarray

    @classmethod
    def of(cls, parts: dict[str, Any]) -> RowScorer | None:
        """The scorer of a fitted ensemble, or ``None`` when it does not apply."""
        svm, logreg = parts["svm"], parts["logreg"]
        vectorizers = (parts["word"], parts["char"])
        if len(svm.classes_) < 3 or len(logreg.classes_) < 3:
            return None  # binary models score one column; keep scikit-learn's path
        if not all(v.sublinear_tf and v.norm == "l2" and v.use_idf and not v.binary
                   for v in vectorizers):  # fmt: skip
            return None
        if list(svm.classes_) != list(logreg.classes_):
            return None
        return cls(_Tfidf(parts["word"]), _Tfidf(parts["char"]), np.asarray(svm.coef_),
                   np.asarray(svm.intercept_), np.asarray(logreg.coef_),
                   np.asarray(logreg.intercept_))  # fmt: skip

    def scores(self, text: str, emb: np.ndarray) -> tuple[np.ndarray, Any]:
        """``(probabilities (1, n_labels), word TF-IDF row as 1×V CSR)`` of one text."""
        dims = emb.shape[0]
        word_cols, word_vals = self.word.row(text)
        char_cols, char_vals = self.char.row(text)
        svm = self.svm_coef[:, :dims] @ (emb.astype(np.float64) * EMBEDDING_WEIGHT)
        svm += self.svm_coef[:, dims + word_cols] @ word_vals
        svm += self.svm_coef[:, dims + self.word.size + char_cols] @ char_vals
        svm += self.svm_intercept
        lr = self.lr_coef @ emb.astype(np.float64) + self.lr_intercept
        probs = ALPHA * _softmax(svm[None, :], TEMPERATURE) + (1 - ALPHA) * _softmax(
            lr[None, :], 1.0
        )
        order = np.argsort(word_cols)
        word_x = sp.csr_matrix(
            (word_vals[order], word_cols[order], [0, len(word_cols)]), shape=(1, self.word.size)
        )
        return probs, word_x


class IntentClassifier:
    """The fitted ensemble (see module docstring).

    Build with :meth:`train`, :meth:`train_with_separator` or :meth:`load`.
    """

    def __init__(
        self,
        embeddings: Embeddings,
        parts: dict[str, Any],
        oos_threshold: float | None = None,
    ) -> None:
        self._embeddings = embeddings
        self._parts = parts
        self._row = RowScorer.of(parts)
        self.oos_threshold = oos_threshold

    @staticmethod
    def _fit(
        emb: np.ndarray, texts: list[str], labels: list[str], *, index: bool = False
    ) -> dict[str, Any]:
        """Fit the ensemble on embedded texts.

        With ``index`` the in-scope rows' embedding and word TF-IDF vectors are kept for the
        separator's nearest-neighbour features (only models with a separator need them).
        """
        word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        char = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 5),
            sublinear_tf=True,
            min_df=2 if len(texts) > 500 else 1,
        )
        word_x = word.fit_transform(texts)
        x = sp.hstack(
            [sp.csr_matrix(emb * EMBEDDING_WEIGHT), word_x, char.fit_transform(texts)]
        ).tocsr()
        svm = LinearSVC(C=0.5).fit(x, labels)
        logreg = LogisticRegression(C=10.0, max_iter=3000).fit(emb, labels)
        parts: dict[str, Any] = {"word": word, "char": char, "svm": svm, "logreg": logreg}
        if index:
            ins = np.asarray(labels) != OUT_OF_SCOPE
            parts["index_emb"] = emb[ins].astype(np.float32)
            parts["index_word"] = word_x[ins].tocsr()
        return parts

    @classmethod
    def train(cls, embeddings: Embeddings, texts: list[str], labels: list[str]) -> IntentClassifier:
        """Fit on labelled utterances (``out_of_scope`` rows become their own class).

        Raises:
            ValueError: fewer than two labels.
        """
        if len(set(labels)) < 2:
            raise ValueError("training data needs at least two labels")
        emb = np.asarray(embeddings.embed_documents(texts), dtype=np.float32)
        return cls(embeddings, cls._fit(emb, texts, labels))

    @classmethod
    def train_with_separator(
        cls,
        embeddings: Embeddings,
        texts: list[str],
        labels: list[str],
        *,
        calibration: list[bool] | None = None,
        min_oos_recall: float = 0.95,
        folds: int = 5,
        seed: int = 0,
    ) -> tuple[IntentClassifier, SeparatorReport]:
        """Fit the ensemble and an in-scope separator on out-of-fold features, and calibrate it.

        Each row's separator features come from an ensemble trained on the other folds; the
        separator's own out-of-fold scores (a second k-fold over those features) calibrate the
        threshold and give the cross-validated estimates of :class:`SeparatorReport`.

        Args:
            embeddings: the sentence embeddings.
            texts: utterances.
            labels: their labels; ``out_of_scope`` rows are the separator's negatives.
            calibration: per row, whether an ``out_of_scope`` row counts when calibrating and
                estimating out-of-scope recall (``False`` for rows written for training only,
                e.g. an outlier exposure set); default every row.
            min_oos_recall: the out-of-fold out-of-scope recall the threshold is set to reach.
            folds: cross-validation folds (both levels).
            seed: fold assignment seed.

        Returns:
            ``(model, report)``.

        Raises:
            ValueError: fewer than two in-scope labels, or fewer than ``2 * folds`` out-of-scope
                calibration rows.
        """
        y = np.asarray(labels)
        keep = np.ones(len(y), dtype=bool) if calibration is None else np.asarray(calibration)
        oos = y == OUT_OF_SCOPE
        if len(set(labels) - {OUT_OF_SCOPE}) < 2:
            raise ValueError("training data needs at least two in-scope labels")
        if int((oos & keep).sum()) < 2 * folds:
            raise ValueError(f"a separator needs at least {2 * folds} out-of-scope rows")
        emb = np.asarray(embeddings.embed_documents(texts), dtype=np.float32)
        strata = np.where(oos & ~keep, OUT_OF_SCOPE + "~exposure", y)
        features = np.zeros((len(y), len(SEPARATOR_FEATURES)))
        best = np.empty(len(y), dtype=object)
        for train_idx, test_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(
            texts, strata
        ):
            fold_texts = [texts[i] for i in train_idx]
            fold_labels = [labels[i] for i in train_idx]
            fold = cls(embeddings, cls._fit(emb[train_idx], fold_texts, fold_labels, index=True))
            test_texts = [texts[i] for i in test_idx]
            probs, word_x = fold._scores(test_texts, emb[test_idx])
            features[test_idx] = fold._separator_features(probs, emb[test_idx], word_x)
            best[test_idx] = fold._best_in_scope(probs)
        in_scope = (~oos).astype(int)
        scores = np.zeros(len(y))
        for train_idx, test_idx in StratifiedKFold(
            folds, shuffle=True, random_state=seed + 1
        ).split(features, strata):
            part = _separator().fit(features[train_idx], in_scope[train_idx])
            scores[test_idx] = part.predict_proba(features[test_idx])[:, 1]
        parts = cls._fit(emb, texts, labels, index=True)
        parts["separator"] = _separator().fit(features, in_scope)
        model = cls(embeddings, parts)
        rows = ~oos | keep
        threshold = _threshold(scores[rows], y[rows], min_oos_recall)
        model.oos_threshold = threshold
        accepted = scores >= threshold
        report = SeparatorReport(
            folds=folds,
            min_oos_recall=min_oos_recall,
            threshold=threshold,
            in_scope_accuracy=round(float(((best == y) & accepted)[~oos].mean()), 4),
            oos_recall=round(float((~accepted)[oos & keep].mean()), 4),
            curve=operating_curve(scores[rows], best[rows], y[rows]),
        )
        return model, report

    @property
    def labels(self) -> list[str]:
        """The labels the model knows."""
        return [str(label) for label in self._parts["svm"].classes_]

    @property
    def has_separator(self) -> bool:
        """Whether out-of-scope is decided by the in-scope separator (see module docstring)."""
        return "separator" in self._parts

    def _embed(self, texts: list[str]) -> np.ndarray:
        if len(texts) == 1:
            return np.asarray([self._embeddings.embed_query(texts[0])], dtype=np.float32)
        return np.asarray(self._embeddings.embed_documents(texts), dtype=np.float32)

    def _scores(self, texts: list[str], emb: np.ndarray) -> tuple[np.ndarray, Any]:
        """Ensemble probabilities and the texts' word TF-IDF vectors."""
        p = self._parts
        if len(texts) == 1 and self._row is not None:  # a turn's message, without sklearn's
            return self._row.scores(texts[0], emb[0])  # per-call overhead (same numbers)
        word_x = p["word"].transform(texts)
        x = sp.hstack(
            [sp.csr_matrix(emb * EMBEDDING_WEIGHT), word_x, p["char"].transform(texts)]
        ).tocsr()
        out: np.ndarray = ALPHA * _softmax(p["svm"].decision_function(x), TEMPERATURE) + (
            1 - ALPHA
        ) * p["logreg"].predict_proba(emb)
        return out, word_x

    def _best_in_scope(self, probs: np.ndarray) -> np.ndarray:
        labels = np.asarray(self.labels, dtype=object)
        masked = probs.copy()
        if OUT_OF_SCOPE in self.labels:
            masked[:, self.labels.index(OUT_OF_SCOPE)] = -1.0
        best: np.ndarray = labels[masked.argmax(axis=1)]
        return best

    def _separator_features(self, probs: np.ndarray, emb: np.ndarray, word_x: Any) -> np.ndarray:
        """The :data:`SEPARATOR_FEATURES` of rows, shape ``(n, 7)``."""
        labels = self.labels
        oos_col = labels.index(OUT_OF_SCOPE) if OUT_OF_SCOPE in labels else None
        in_probs = probs if oos_col is None else np.delete(probs, oos_col, axis=1)
        top2 = np.sort(in_probs, axis=1)[:, -2:]
        p_oos = probs[:, oos_col] if oos_col is not None else np.zeros(len(probs))

        def nearest(sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            k = min(5, sims.shape[1])
            top = -np.partition(-sims, k - 1, axis=1)[:, :k]
            return top.max(axis=1), top.mean(axis=1)

        nn1, nn5 = nearest(emb @ self._parts["index_emb"].T)
        w1, w5 = nearest(np.asarray((word_x @ self._parts["index_word"].T).todense()))
        return np.column_stack([top2[:, 1], top2[:, 1] - top2[:, 0], p_oos, nn1, nn5, w1, w5])

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Ensemble probabilities, shape ``(len(texts), len(labels))``, rows summing to 1."""
        return self._scores(texts, self._embed(texts))[0]

    def _predict(self, texts: list[str]) -> list[IntentPrediction]:
        emb = self._embed(texts)
        probs, word_x = self._scores(texts, emb)
        in_scope = None
        if self.has_separator:
            features = self._separator_features(probs, emb, word_x)
            in_scope = self._parts["separator"].predict_proba(features)[:, 1]
        return self._decide(probs, in_scope)

    def _decide(
        self, probs: np.ndarray, in_scope: np.ndarray | None = None
    ) -> list[IntentPrediction]:
        labels = self.labels
        oos_col = labels.index(OUT_OF_SCOPE) if OUT_OF_SCOPE in labels else None
        preds = []
        for n, row in enumerate(probs):
            order = np.argsort(row)[::-1]
            ranking = [(labels[i], round(float(row[i]), 4)) for i in order[:3]]
            best = next(i for i in order if i != oos_col)
            confidence = float(row[best])
            score = None if in_scope is None else round(float(in_scope[n]), 4)
            if score is not None:  # the separator decides
                rejected = self.oos_threshold is not None and score < self.oos_threshold
                intent = OUT_OF_SCOPE if rejected else labels[best]
            else:
                intent = labels[int(order[0])]
                if self.oos_threshold is not None and confidence < self.oos_threshold:
                    intent = OUT_OF_SCOPE
            preds.append(IntentPrediction(intent, round(confidence, 4), ranking, score,
                                          labels[best]))  # fmt: skip
        return preds

    def predict(self, text: str) -> IntentPrediction:
        """Classify one utterance (its embedding is cached by the embedder)."""
        return self._predict([text])[0]

    def predict_many(self, texts: list[str], batch: int = 256) -> list[IntentPrediction]:
        """Classify many utterances in batches."""
        out: list[IntentPrediction] = []
        for i in range(0, len(texts), batch):
            out += self._predict(texts[i : i + batch])
        return out

    def calibrate(self, texts: list[str], labels: list[str], min_oos_recall: float = 0.85) -> float:
        """Set the out-of-scope threshold from labelled calibration data.

        Picks the smallest threshold whose out-of-scope recall on the data reaches
        ``min_oos_recall`` (so in-scope accuracy drops no further than needed), on ``in_scope``
        for a model with a separator, else on ``max p``.

        Returns:
            The threshold (also stored on the model).

        Raises:
            ValueError: the data has no ``out_of_scope`` rows.
        """
        saved, self.oos_threshold = self.oos_threshold, None
        preds = self.predict_many(texts)
        self.oos_threshold = saved
        if self.has_separator:
            scores = np.asarray([p.in_scope for p in preds], dtype=float)
            threshold = _threshold(scores, np.asarray(labels), min_oos_recall)
        else:
            threshold = self.threshold_for(self.probabilities(texts), labels, min_oos_recall)
        self.oos_threshold = threshold
        return threshold

    def threshold_for(self, probs: np.ndarray, labels: list[str], min_oos_recall: float) -> float:
        """The smallest ``max p`` threshold reaching ``min_oos_recall`` on these rows.

        For models without a separator.

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

    def save(
        self, directory: Path, meta: dict[str, Any] | None = None, *, replace: bool = True
    ) -> None:
        """Write the model to ``directory`` (``model.joblib`` + ``model.json``), atomically.

        The files are written to a fresh directory beside it, which is then renamed into place:
        a reader never sees half a file. With ``replace`` a model already there is swapped out
        (a reader in that instant finds no model); without it a model already there is kept
        (processes starting together on one ``DATA_DIR`` train the same model: the first saved
        stays, and a reader sees no model or a whole one).
        """
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
        joblib.dump(self._parts, staging / "model.joblib")
        info = {"labels": self.labels, "oos_threshold": self.oos_threshold,
                "separator": self.has_separator, "embedding": "all-MiniLM-L6-v2",
                **(meta or {})}  # fmt: skip
        (staging / "model.json").write_text(json.dumps(info, indent=2))
        if not replace:
            try:
                staging.rename(directory)
            except OSError:  # another process saved it first: keep that one
                shutil.rmtree(staging, ignore_errors=True)
            return
        retired = directory.parent / f".{directory.name}.old.{uuid.uuid4().hex[:8]}"
        with contextlib.suppress(FileNotFoundError):
            directory.rename(retired)  # a model saved before: set aside, then removed
        try:
            staging.rename(directory)
        except OSError:  # another process put its copy there in between: keep that one
            shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path, embeddings: Embeddings) -> IntentClassifier:
        """Read a model written by :meth:`save`.

        Raises:
            FileNotFoundError: no model in ``directory``.
        """
        info = json.loads((directory / "model.json").read_text())
        return cls(embeddings, joblib.load(directory / "model.joblib"), info["oos_threshold"])


def _separator() -> Pipeline:
    """The in-scope separator before fitting (see the module docstring)."""
    return make_pipeline(
        StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000)
    )


def _threshold(scores: np.ndarray, labels: np.ndarray, min_oos_recall: float) -> float:
    """A threshold rejecting at least ``min_oos_recall`` of the out-of-scope rows.

    Rows are rejected when ``score < threshold``; the threshold is just above the score of the
    k-th lowest out-of-scope row, k = ceil(min_oos_recall · n).

    Raises:
        ValueError: no ``out_of_scope`` rows.
    """
    oos = np.sort(scores[labels == OUT_OF_SCOPE])
    if not len(oos):
        raise ValueError("calibration data needs out_of_scope rows")
    k = int(np.ceil(min_oos_recall * len(oos)))
    return round(float(oos[k - 1]) + 1e-6, 6)


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
        meta = {"tenant": tenant_id, "training_sha256": digest, "n": len(texts)}
        clf.save(path, meta, replace=False)
        logger.info("intent_model_trained", extra={"tenant_id": tenant_id, "n": len(texts)})
        return clf
