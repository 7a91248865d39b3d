"""Measuring intent models: metrics, confusion matrix, k-fold cross-validation, OOS calibration.

Metrics (``evaluate``), over rows of labelled data where ``out_of_scope`` marks out-of-scope rows:

- ``accuracy``: share of all rows whose prediction equals the label (out-of-scope included);
- ``macro_f1``: unweighted mean F1 over the labels present in the data or the predictions;
- ``in_scope_accuracy``: accuracy over in-scope rows only (a rejected in-scope row is an error);
- ``oos_recall``: share of out-of-scope rows predicted ``out_of_scope``;
  both ``None`` when the data has no out-of-scope rows (then ``in_scope_accuracy`` is too);
- ``per_intent``: precision, recall, F1 and support per label;
- ``confusions``: the :data:`TOP_CONFUSIONS` most frequent (true, predicted) pairs with
  ``true != predicted``, most frequent first, each with its count and its share of the true
  label's rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from sklearn.metrics import f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold

from support_agent.intents.classifier import OUT_OF_SCOPE, IntentClassifier

#: How many confusion pairs a report lists and draws.
TOP_CONFUSIONS = 30
#: Above this many labels the full confusion matrix has no tick labels (they cannot be read).
MATRIX_LABELS_MAX = 40


def top_confusions(
    y: np.ndarray, yhat: np.ndarray, k: int = TOP_CONFUSIONS
) -> list[dict[str, Any]]:
    """The ``k`` most frequent errors as ``{"true", "predicted", "count", "share"}``.

    ``share`` is ``count`` over the number of rows labelled ``true`` (what fraction of that
    intent goes to ``predicted``). Ties are broken by label names, so the order is stable.
    """
    support: dict[str, int] = {}
    pairs: dict[tuple[str, str], int] = {}
    for a, b in zip(y.tolist(), yhat.tolist(), strict=True):
        support[a] = support.get(a, 0) + 1
        if a != b:
            pairs[(a, b)] = pairs.get((a, b), 0) + 1
    ranked = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [
        {"true": a, "predicted": b, "count": n, "share": round(n / support[a], 4)}
        for (a, b), n in ranked
    ]


class CachedEmbeddings(Embeddings):
    """Memoises another embedder per text (training and CV embed the same texts many times)."""

    def __init__(self, base: Embeddings) -> None:
        self._base = base
        self._memo: dict[str, list[float]] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts, computing only those not seen before (in one batch)."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing:
            for text, vector in zip(missing, self._base.embed_documents(missing), strict=True):
                self._memo[text] = vector
        return [self._memo[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        """Embed one text (memoised)."""
        return self.embed_documents([text])[0]


def evaluate(
    model: IntentClassifier, texts: list[str], labels: list[str], png: Path | None = None
) -> dict[str, Any]:
    """Score a model on labelled data; optionally draw the confusions.

    Args:
        model: the classifier.
        texts: utterances.
        labels: their labels (``out_of_scope`` for out-of-scope rows).
        png: where to draw the full confusion matrix; the top confusions go next to it as
            ``<stem>_top.png``.

    Returns:
        ``{"n", "accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "per_intent",
        "confusions"}`` (see the module docstring).
    """
    preds = [p.intent for p in model.predict_many(texts)]
    result = score_predictions(labels, preds)
    if png is not None:
        draw_confusions(labels, preds, png)
    return result


def score_predictions(labels: list[str], preds: list[str]) -> dict[str, Any]:
    """The metrics of the module docstring for predicted labels against true ones.

    Returns:
        ``{"n", "accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "per_intent",
        "confusions"}``.
    """
    y = np.asarray(labels)
    yhat = np.asarray(preds)
    has_oos = bool((y == OUT_OF_SCOPE).any())
    names = sorted(set(labels) | set(preds))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, yhat, labels=names, zero_division=0
    )
    ins = y != OUT_OF_SCOPE
    return {
        "n": len(labels),
        "accuracy": round(float((y == yhat).mean()), 4),
        "macro_f1": round(
            float(f1_score(y, yhat, labels=names, average="macro", zero_division=0)), 4
        ),
        "in_scope_accuracy": round(float((y[ins] == yhat[ins]).mean()), 4) if has_oos else None,
        "oos_recall": round(float((yhat[~ins] == OUT_OF_SCOPE).mean()), 4) if has_oos else None,
        "per_intent": {
            name: {
                "precision": round(float(p), 4),
                "recall": round(float(r), 4),
                "f1": round(float(f), 4),
                "support": int(s),
            }
            for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)
        },  # fmt: skip
        "confusions": top_confusions(y, yhat),
    }


def draw_confusions(labels: list[str], preds: list[str], png: Path) -> list[Path]:
    """Draw the full matrix at ``png`` and the top confusions at ``<stem>_top.png``."""
    y, yhat = np.asarray(labels), np.asarray(preds)
    top = png.with_name(f"{png.stem}_top.png")
    draw_confusion(y, yhat, sorted(set(labels) | set(preds)), png)
    draw_top_confusions(top_confusions(y, yhat), top)
    return [png, top]


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt: Any, fig: Any, png: Path) -> None:
    """Lay out, write (120 dpi) and close a figure."""
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)


def draw_confusion(y: np.ndarray, yhat: np.ndarray, names: list[str], png: Path) -> None:
    """Write the row-normalised confusion matrix (true rows, predicted columns) as PNG.

    With a colour bar (share of the true label's rows); labels on the axes and the share in each
    cell only up to :data:`MATRIX_LABELS_MAX` labels (a 151-label grid has no readable labels:
    read its top confusions instead, :func:`draw_top_confusions`).
    """
    plt = pyplot()
    index = {n: i for i, n in enumerate(names)}
    matrix = np.zeros((len(names), len(names)))
    for a, b in zip(y, yhat, strict=True):
        matrix[index[a], index[b]] += 1
    matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    readable = len(names) <= MATRIX_LABELS_MAX
    size = max(6.0, 0.3 * len(names) + 3) if readable else 10.0
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true label's rows")
    if readable:
        ticks = list(range(len(names)))
        ax.set_xticks(ticks, names, rotation=90, fontsize=9)
        ax.set_yticks(ticks, names, fontsize=9)
        for i, j in zip(*np.nonzero(matrix), strict=True):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] > 0.5 else "black")  # fmt: skip
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_xlabel("predicted intent")
    ax.set_ylabel("true intent")
    ax.set_title(f"Confusion matrix, row-normalised ({len(names)} labels, n={len(y)})")
    save_figure(plt, fig, png)


def draw_top_confusions(confusions: list[dict[str, Any]], png: Path) -> None:
    """Write the most frequent confusions as a horizontal bar chart (count, and share in %)."""
    plt = pyplot()
    rows = list(reversed(confusions))  # the most frequent at the top
    fig, ax = plt.subplots(figsize=(10, max(2.5, 0.32 * len(rows) + 1.2)))
    if rows:
        labels = [f"{c['true']} → {c['predicted']}" for c in rows]
        bars = ax.barh(range(len(rows)), [c["count"] for c in rows], color="#2747d1")
        ax.set_yticks(range(len(rows)), labels, fontsize=9)
        for bar, c in zip(bars, rows, strict=True):
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                    f" {c['count']} ({c['share']:.0%})", va="center", fontsize=8)  # fmt: skip
        ax.set_xlim(0, max(c["count"] for c in rows) * 1.2)
    else:
        ax.text(0.5, 0.5, "no confusions", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("rows (share of the true intent's rows)")
    ax.set_title(f"Top {len(rows)} confusions: true → predicted")
    save_figure(plt, fig, png)


def out_of_fold_probabilities(
    embeddings: Embeddings, texts: list[str], labels: list[str], folds: int = 5, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    """Each row's probabilities from a model that did not see it (stratified k-fold).

    Returns:
        ``(probs, label_order)`` with ``probs`` of shape ``(len(texts), n_labels)``.
    """
    order = sorted(set(labels))
    probs = np.zeros((len(texts), len(order)))
    y = np.asarray(labels)
    for train_idx, test_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(
        texts, y
    ):
        model = IntentClassifier.train(
            embeddings, [texts[i] for i in train_idx], [labels[i] for i in train_idx]
        )
        fold = model.probabilities([texts[i] for i in test_idx])
        cols = [order.index(label) for label in model.labels]
        probs[np.ix_(test_idx, cols)] = fold
    return probs, order


def cross_validate(
    embeddings: Embeddings, texts: list[str], labels: list[str], folds: int = 5, seed: int = 0
) -> dict[str, Any]:
    """Stratified k-fold cross-validation accuracy of the trainer.

    Returns:
        ``{"folds", "n", "accuracy", "fold_accuracies", "macro_f1"}`` (accuracy = mean of folds).
    """
    y = np.asarray(labels)
    accs: list[float] = []
    all_true: list[str] = []
    all_pred: list[str] = []
    for train_idx, test_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(
        texts, y
    ):
        model = IntentClassifier.train(
            embeddings, [texts[i] for i in train_idx], [labels[i] for i in train_idx]
        )
        preds = [p.intent for p in model.predict_many([texts[i] for i in test_idx])]
        truth = [labels[i] for i in test_idx]
        accs.append(float(np.mean([a == b for a, b in zip(preds, truth, strict=True)])))
        all_true += truth
        all_pred += preds
    return {
        "folds": folds,
        "n": len(labels),
        "accuracy": round(float(np.mean(accs)), 4),
        "fold_accuracies": [round(a, 4) for a in accs],
        "macro_f1": round(float(f1_score(all_true, all_pred, average="macro")), 4),
    }
