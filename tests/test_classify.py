"""classify_intent: the classifier on unseen phrasings, and the sub-signals."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from support_agent.conversation import Agent
from support_agent.intents.signals import (
    cancel_reason,
    detect_signals,
    extract_identifiers,
    extract_order_ids,
    introduction_only,
    is_closing,
)
from support_agent.services import Services

# Phrasings written for the test, not present in the training file.
UNSEEN = [
    ("could you tell me where my parcel is right now", "order_status"),
    ("please call off my order, I don't want it", "cancel"),
    ("the vase came shattered, I want my money back", "return"),
    ("can I get this jacket in an XL instead", "exchange"),
    ("I need the delivery to go to my new apartment", "modify_address"),
    ("still waiting on the money you owe me from the return", "refund_status"),
    ("put me through to a live person", "human_agent"),
]


async def test_classifier_on_unseen_phrasings(agent: Agent) -> None:
    clf = await asyncio.to_thread(agent.deps("retail").intent_model)
    correct = sum(clf.predict(text).intent == label for text, label in UNSEEN)
    assert correct >= len(UNSEEN) - 1, [(t, clf.predict(t).intent) for t, _ in UNSEEN]
    prediction = clf.predict("where is my order")
    assert prediction.intent == "order_status"
    assert 0.0 <= prediction.confidence <= 1.0
    assert [r[1] for r in prediction.ranking] == sorted(
        (r[1] for r in prediction.ranking), reverse=True
    )


async def test_one_message_scores_equal_scikit_learns(agent: Agent) -> None:
    """The one-text path (``RowScorer``: TF-IDF, SVM and logistic scores from the fitted
    parameters) gives scikit-learn's numbers: probabilities and the word TF-IDF row."""
    clf = await asyncio.to_thread(agent.deps("retail").intent_model)
    assert clf._row is not None  # noqa: SLF001 - the path under test
    texts = [t for t, _ in UNSEEN] + ["?", "zzqx unseenword", "order order order ORDER!!", "héllo"]
    for text in texts:
        emb = clf._embed([text])  # noqa: SLF001
        fast, fast_word = clf._scores([text], emb)  # noqa: SLF001
        # two rows take scikit-learn's path; the first row is the text itself
        slow, slow_word = clf._scores([text, "where is my order"], np.vstack([emb, emb]))  # noqa: SLF001
        assert np.allclose(fast[0], slow[0], atol=1e-9), text
        assert np.allclose(fast_word.toarray()[0], slow_word.toarray()[0], atol=1e-12), text
        assert clf.predict(text).intent == clf._decide(slow[:1])[0].intent  # noqa: SLF001


async def test_classifier_model_is_cached_on_disk(services: Services) -> None:
    dirs = list((services.settings.data_dir / "models").glob("retail-intents-*"))
    assert len(dirs) == 1
    assert (dirs[0] / "model.joblib").is_file() and (dirs[0] / "model.json").is_file()


@pytest.mark.parametrize(
    ("text", "frustrated"),
    [("This is RIDICULOUS, still not fixed!!", True), ("thanks, that works", False)],
)
def test_frustration(text: str, frustrated: bool) -> None:
    assert (detect_signals(text).frustration >= 0.75) is frustrated


def test_frustration_is_noisy_or_of_cue_weights() -> None:
    # "ridiculous" (0.5) and "unacceptable" (0.55): 1 - 0.5·0.45 = 0.775
    assert detect_signals("ridiculous and unacceptable").frustration == pytest.approx(0.775)


def test_human_request_and_churn() -> None:
    assert detect_signals("can I talk to a real person please").human_request
    assert not detect_signals("the person at the door took the parcel").human_request
    assert detect_signals("I'll take my business elsewhere").churn_threat


def test_an_introduction_is_no_request_and_endings_are_endings() -> None:
    assert introduction_only("Hi, my email is ana.ruiz@example.com")
    assert introduction_only("hi, my phone is 713 555 0963")
    assert introduction_only("Hello, I'm Yusuf Rossi, zip code 19122.")
    assert introduction_only("Hi, my user id is yusuf_rossi_9259 and my zip code is 19122.")
    assert not introduction_only("my phone is 7135550963, my card is broken")
    assert not introduction_only("Hi, it's emma.k@example.com, did my return go through?")
    assert not introduction_only("Hi, my email is a@b.com. Cancel my order")  # no name
    assert is_closing("Perfect, that's all.") and is_closing("OK, I'll get back to you on that.")
    assert not is_closing("thanks, can you check my order?")
    assert not is_closing("thanks " + "and one more thing about the order " * 3)


def test_entities() -> None:
    assert extract_order_ids("order #W1234567 and w7654321") == ["#W1234567", "#W7654321"]
    found = extract_identifiers("I'm Ann Lee, zip 10001, email Ann.Lee@Example.com")
    assert found == {"email": "Ann.Lee@Example.com", "zip": "10001"}
    assert extract_identifiers("call +1 (555) 010-2030")["phone"] == "+1 (555) 010-2030"
    assert cancel_reason("I ordered it by mistake") == "ordered by mistake"
    assert cancel_reason("just cancel it") is None


def test_an_introduction_with_the_banks_verification_facts_is_still_only_one() -> None:
    """The bank verifies with two facts: "my email is …, date of birth …" only introduces."""
    assert introduction_only("Hi, my email is mia@example.com and my date of birth is 03/15/1992")
    assert introduction_only("I was born on 03/15/1992, I live at 742 Maple Street, Austin, TX")
    assert not introduction_only("my date of birth is 03/15/1992, freeze my card")
