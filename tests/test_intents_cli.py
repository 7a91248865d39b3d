"""The intent trainer's CLI on real public data (small slices): train, calibrate, eval, cv."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from support_agent.cli import main
from support_agent.embeddings import MiniLMEmbeddings
from support_agent.intents.classifier import OUT_OF_SCOPE, IntentClassifier, read_labelled_csv
from support_agent.intents.signals import detect_signals

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def slices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """8 Banking77 intents (30 train / 10 test rows each) and CLINC150 out-of-scope rows."""
    tmp = tmp_path_factory.mktemp("intents")
    by_cat: dict[str, list[str]] = {}
    with (SHARED / "banking77" / "train.csv").open() as fh:
        for row in csv.DictReader(fh):
            by_cat.setdefault(row["category"], []).append(row["text"])
    cats = sorted(by_cat)[:8]
    clinc = json.loads(gzip.decompress((SHARED / "clinc150" / "train_val.json.gz").read_bytes()))
    train = [(t, c) for c in cats for t in by_cat[c][:30]]
    test = [(t, c) for c in cats for t in by_cat[c][30:40]]
    oos_train = [(t, OUT_OF_SCOPE) for t, _ in clinc["oos_train"][:60]]
    oos_test = [(t, OUT_OF_SCOPE) for t, _ in clinc["oos_val"][:40]]
    return {
        "train": _write(tmp / "train.csv", train),
        "oos": _write(tmp / "oos.csv", oos_train),
        "test": _write(tmp / "test.csv", test + oos_test),
        "test_in_scope": _write(tmp / "test_in.csv", test),
        "dir": tmp,
    }


def _json_out(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    out = capsys.readouterr().out.strip().splitlines()[-1]
    return json.loads(out)  # type: ignore[no-any-return]


def test_train_with_oos_then_eval_prints_the_metrics(
    slices: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model = slices["dir"] / "model"
    assert main(["intents", "train", "--data", str(slices["train"]), "--oos", str(slices["oos"]),
                 "--out", str(model)]) == 0  # fmt: skip
    trained = _json_out(capsys)
    assert trained["labels"] == 9  # 8 intents + out_of_scope
    assert isinstance(trained["oos_threshold"], float)
    assert main(["intents", "eval", "--model", str(model), "--data", str(slices["test"])]) == 0
    result = _json_out(capsys)
    assert set(result) == {"n", "accuracy", "macro_f1", "in_scope_accuracy", "oos_recall",
                           "per_intent", "confusions"}  # fmt: skip
    assert result["n"] == 120
    assert result["in_scope_accuracy"] >= 0.8  # type: ignore[operator]
    assert result["oos_recall"] >= 0.7  # type: ignore[operator]
    per = result["per_intent"]
    assert isinstance(per, dict) and OUT_OF_SCOPE in per and per[OUT_OF_SCOPE]["support"] == 40
    for name in ("confusion_test.png", "confusion_test_top.png"):
        assert (model / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    errors = result["confusions"]
    assert isinstance(errors, list) and len(errors) <= 30
    counts = [c["count"] for c in errors]
    assert counts == sorted(counts, reverse=True) and all(c["true"] != c["predicted"]
                                                          for c in errors)  # fmt: skip
    wrong = round(result["n"] * (1 - result["accuracy"]))  # type: ignore[operator]
    assert sum(counts) == wrong or len(errors) == 30  # every error is in some listed pair


def test_eval_without_oos_rows_reports_null_oos_fields(
    slices: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model = slices["dir"] / "plain"
    assert main(["intents", "train", "--data", str(slices["train"]), "--out", str(model)]) == 0
    _json_out(capsys)
    assert main(["intents", "eval", "--model", str(model),
                 "--data", str(slices["test_in_scope"])]) == 0  # fmt: skip
    result = _json_out(capsys)
    assert result["oos_recall"] is None and result["in_scope_accuracy"] is None
    assert result["accuracy"] >= 0.8  # type: ignore[operator]


def test_calibration_reaches_the_requested_recall(slices: dict[str, Path]) -> None:
    embeddings = MiniLMEmbeddings()
    texts, labels = read_labelled_csv(slices["train"])
    model = IntentClassifier.train(embeddings, texts, labels)
    cal_texts, cal_labels = read_labelled_csv(slices["test"])
    threshold = model.calibrate(cal_texts, cal_labels, min_oos_recall=0.9)
    preds = [p.intent for p in model.predict_many(cal_texts)]
    oos = [p for p, label in zip(preds, cal_labels, strict=True) if label == OUT_OF_SCOPE]
    assert sum(p == OUT_OF_SCOPE for p in oos) / len(oos) >= 0.9
    lower = model.threshold_for(model.probabilities(cal_texts), cal_labels, 0.5)
    assert lower <= threshold  # asking for less recall never raises the threshold


def test_cross_validation(slices: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["intents", "cv", "--data", str(slices["train"]), "--folds", "3"]) == 0
    result = _json_out(capsys)
    assert result["folds"] == 3 and len(result["fold_accuracies"]) == 3  # type: ignore[arg-type]
    assert result["accuracy"] >= 0.8  # type: ignore[operator]


def test_bad_data_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("utterance,label\nhello,greet\n")
    assert main(["intents", "cv", "--data", str(bad)]) == 2
    assert "text,category" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "field", "low"),
    [
        ("my card was stolen, block it right now", "urgency", 0.7),
        ("my husband passed away and I cannot pay the fees", "vulnerability", 0.8),
    ],
)
def test_urgency_and_vulnerability(text: str, field: str, low: float) -> None:
    signals = detect_signals(text)
    assert getattr(signals, field) >= low
    assert detect_signals("what is my balance").__dict__[field] == 0.0


def test_sentiment_spans_minus_one_to_one() -> None:
    assert detect_signals("thanks, that is perfect").sentiment > 0.5
    assert detect_signals("this is ridiculous and unacceptable").sentiment < -0.5
    assert detect_signals("my husband passed away").vulnerability_kind == "bereavement"


def test_top_confusions_counts_and_shares() -> None:
    import numpy as np

    from support_agent.intents.evaluation import top_confusions

    y = np.array(["a", "a", "a", "a", "b", "b", "c"])
    yhat = np.array(["a", "b", "b", "c", "a", "b", "c"])
    assert top_confusions(y, yhat) == [
        {"true": "a", "predicted": "b", "count": 2, "share": 0.5},
        {"true": "a", "predicted": "c", "count": 1, "share": 0.25},
        {"true": "b", "predicted": "a", "count": 1, "share": 0.5},
    ]
    assert top_confusions(y, yhat, k=1) == [{"true": "a", "predicted": "b", "count": 2,
                                               "share": 0.5}]  # fmt: skip
    assert top_confusions(y, y) == []


def test_saving_is_atomic_when_processes_race(slices: dict[str, Path], tmp_path: Path) -> None:
    """Several API processes starting on one DATA_DIR may train and save the same model at once:
    whatever the interleaving, the directory holds one whole loadable model and nothing is left
    beside it; a later save replaces it."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    embeddings = MiniLMEmbeddings()
    texts, labels = read_labelled_csv(slices["train"])
    model = IntentClassifier.train(embeddings, texts, labels)
    target = tmp_path / "models" / "bank-intents-abc"
    seen: list[str] = []
    saved = threading.Event()

    def read_while_written() -> None:  # a process starting meanwhile: sees a whole model or none
        while not saved.is_set():
            if (target / "model.json").is_file():
                try:
                    IntentClassifier.load(target, embeddings)
                    seen.append("whole")
                except (OSError, EOFError, ValueError, KeyError) as exc:
                    seen.append(type(exc).__name__)

    with ThreadPoolExecutor(5) as pool:
        reader = pool.submit(read_while_written)
        list(pool.map(lambda n: model.save(target, {"writer": n}, replace=False), range(8)))
        saved.set()
        reader.result()
    assert set(seen) <= {"whole"}, sorted(set(seen))
    assert sorted(p.name for p in target.parent.iterdir()) == ["bank-intents-abc"]
    assert sorted(p.name for p in target.iterdir()) == ["model.joblib", "model.json"]
    loaded = IntentClassifier.load(target, embeddings)
    assert loaded.labels == model.labels
    assert loaded.predict(texts[0]).intent == model.predict(texts[0]).intent
    model.save(target, {"writer": "later"})
    assert json.loads((target / "model.json").read_text())["writer"] == "later"
    assert sorted(p.name for p in target.parent.iterdir()) == ["bank-intents-abc"]
