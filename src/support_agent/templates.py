"""What the generic nodes say, whatever the line of business: grounded templates.

Every vertical words its own records in its own ``templates`` module; these are the sentences the
graph says for any tenant: asking for identification, greeting, offering help, a warm handoff,
recalling an open issue, quoting a help article. Facts come from the Customer 360 and memory;
personal contact data is never echoed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from support_agent.state import Issue


def money(amount: float) -> str:
    """An amount in dollars as customers read it: ``1234.5`` → ``"$1,234.50"`` (sign dropped)."""
    return f"${abs(amount):,.2f}"


def when_phrase(iso: str | None) -> str:
    """``"on 2026-11-21"`` from an ISO timestamp (or ``"earlier"``)."""
    if not iso:
        return "earlier"
    return "on " + datetime.fromisoformat(iso).date().isoformat()


def ask_identification(status: str, ask: str, more: str = "", code_offered: bool = False) -> str:
    """Ask for what verifies the customer; the same words whoever the facts belong to.

    Args:
        status: the identification status (``missing``, ``partial``, ``failed``, ``locked``).
        ask: the tenant's way of asking ("the email address on your account, or your full name
            and zip code").
        more: the facts still needed, in words (``partial``), e.g. "your zip code".
        code_offered: the customer typed an email that one-time codes go to: a code was sent if
            the email is on an account.
    """
    if status == "locked":
        return (
            "I'm sorry, I can't verify your identity in this conversation after several "
            "unsuccessful tries. I can still answer general questions, or a colleague can help "
            "you: just ask for a person."
        )
    if status == "failed":
        return f"I couldn't verify those details. Please check them and try again with {ask}."
    if status == "partial" and code_offered:
        other = f", or tell me {more}" if more else ""
        return (
            "Thanks. If that email is on an account, I've just sent a 6-digit code to it: "
            f"please type the code here{other}."
        )
    if status == "partial" and more:
        return f"Thanks. To verify it's you, I also need {more}."
    return f"I can help with that. First, so I can verify it's you, please share {ask}."


def greeting(first_name: str) -> str:
    """The line that opens the first reply after verification."""
    return f"Thanks, {first_name}, you're verified. "


def hello(topics: str) -> str:
    """The opening when nothing more specific applies."""
    return f"Hello! I can help with {topics}."


def rephrase(topics: str) -> str:
    """Mid-conversation, when nothing more specific applies: no new greeting, ask again."""
    return (
        f"I'm sorry, I didn't quite catch what you need. I can help with {topics}; "
        "could you say it another way?"
    )


def closing(first_name: str | None) -> str:
    """Thanks or a goodbye: a closing reply, never a greeting and never an action."""
    name = f", {first_name}" if first_name else ""
    return (
        f"You're welcome{name}. If anything else comes up, just write; "
        "I'll remember where we left off."
    )


def how_can_i_help() -> str:
    """After verification, with nothing open."""
    return "How can I help you today?"


def welcome_back(issue_line: str) -> str:
    """After verification, with an open issue to pick up."""
    return f"Welcome back. I can see {issue_line}. Would you like to continue with that?"


def where_things_stand(issue_line: str, status: str) -> str:
    """A follow-up on an open issue: what was said, and where it stands now."""
    return f"Here's where things stand: {issue_line}. {status}"


def out_of_scope(topics: str) -> str:
    """A message outside what the agent does."""
    return f"That's outside what I can help with here. I can help with {topics}."


def offer_own_help(topics: str) -> str:
    """A request for a person that the agent can still help with (offered before transferring)."""
    return (
        f"I can help with that right here: {topics}. If you'd still prefer a person, just say so "
        "and I'll connect you."
    )


def declined() -> str:
    """The customer said no to a proposal."""
    return "No problem, I won't make that change. Is there anything else I can help with?"


def ask_plainly(what: str) -> str:
    """The second, plain question about a proposed write the answer left unclear."""
    return (
        f"I need a clear yes or no before I change anything: shall I go ahead with {what}? "
        "Please answer yes or no."
    )


def left_as_is(what: str) -> str:
    """The proposal is dropped after a second unclear answer: nothing was changed."""
    return (
        f"I'll leave {what} for now; nothing has been changed. Just tell me if you want to go "
        "ahead later."
    )


def left_undone(what: str) -> str:
    """An ending while a proposal waits: it is not carried out."""
    return f"I haven't done {what}; nothing has been changed."


def superseded(what: str) -> str:
    """A new request replaced a proposal: what will not happen, before the new answer."""
    return f"OK, I won't go ahead with {what}. "


def one_customer_only() -> str:
    """A second customer presented in one session."""
    return (
        "I can only help with one customer's account in a conversation. "
        "Please start a new conversation for another account."
    )


def refused(reason: str | None) -> str:
    """The policy denied the action: its reason, in the policy's words."""
    return f"I'm sorry, I can't do that: {reason}."


def which_record(kind: str, options: list[str]) -> str:
    """Which record the customer means, listing the candidates when there are some."""
    if options:
        return f"Which {kind} do you mean: " + "; or ".join(options) + "?"
    return f"Which {kind} do you mean?"


def loyalty_offer() -> str:
    """A retention offer a vertical has no words of its own for."""
    return "I can offer you a loyalty benefit. Reply yes if you'd like it."


def cannot_do(reason: str) -> str:
    """A write the systems of record refused at the last moment."""
    return f"I'm sorry, I couldn't do that: {reason}."


def already_done(what: str) -> str:
    """The same change was confirmed again: it ran earlier in this conversation, not now."""
    return (
        f"That was already done earlier in this conversation ({what}); I haven't changed "
        "anything again. Is there anything else I can help with?"
    )


def nothing_to_confirm() -> str:
    """A "yes" when no proposal is waiting for one: nothing is done."""
    return (
        "There's nothing waiting for your go-ahead right now, so I haven't changed anything. "
        "What would you like me to do?"
    )


def colleague_can_do() -> str:
    """A confirmed action only a human can complete."""
    return (
        "I'm connecting you with a colleague who can do this and can see this whole "
        "conversation, so you won't need to repeat anything."
    )


def open_issue_line(
    issue: Issue, describe: Callable[[Issue], str], action_words: Callable[[list[str]], str]
) -> str:
    """One sentence recalling an open issue from an earlier session.

    Args:
        issue: the open issue (with ``episode_channel`` when loaded from memory).
        describe: the vertical's words for what the issue is about.
        action_words: the vertical's words for actions.
    """
    channel = issue.get("episode_channel")
    via = f" on {channel}" if channel else ""
    line = (
        f"you told us{via} {when_phrase(issue.get('created_at'))} that {describe(issue)} had a "
        f"problem ({issue.get('description')})"
    )
    proposed = issue.get("proposed_actions") or []
    if proposed:
        line += f", and we offered {action_words(proposed)}"
    return line


def handoff_message(issue: Issue | None, describe: Callable[[Issue], str]) -> str:
    """What the customer hears at a warm handoff: who takes over and what they already know."""
    about = ""
    if issue and (issue.get("subject_id") or issue.get("order_id")):
        about = f" about {describe(issue)}"
    return (
        f"I'm connecting you with a colleague now{about}. They can see everything we've "
        "discussed, so you won't need to repeat yourself."
    )


def knowledge_answer(doc: dict[str, Any], question: str) -> str:
    """A grounded answer from one help article, quoted, never rewritten.

    The article's title and its lines (at most three, in article order) sharing most words with
    the question.
    """
    words = set(re.findall(r"[a-z]{3,}", question.lower()))
    lines = [ln.strip(" -*#") for ln in str(doc.get("text") or "").splitlines()]
    lines = [ln for ln in lines if len(ln) > 20]
    ranked = sorted(
        range(len(lines)),
        key=lambda i: (-len(words & set(re.findall(r"[a-z]{3,}", lines[i].lower()))), i),
    )
    best = sorted(ranked[:3])
    body = " ".join(lines[i].rstrip(".") + "." for i in best)
    return f'From our help article "{doc["title"]}": {body}'.strip()
