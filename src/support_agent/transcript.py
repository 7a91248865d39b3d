"""Reading a session's transcript: the customer's and the agent's messages."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage


def last_customer_text(messages: Sequence[AnyMessage] | None) -> str:
    """Text of the latest customer (human) message, or ``""``."""
    for message in reversed(messages or []):
        if isinstance(message, HumanMessage):
            return message.text if hasattr(message, "text") else str(message.content)
    return ""


def customer_lines(messages: Sequence[AnyMessage] | None) -> list[str]:
    """All customer messages of the session, in order."""
    return [str(m.content) for m in messages or [] if isinstance(m, HumanMessage)]


def agent_lines(messages: Sequence[AnyMessage] | None) -> list[str]:
    """All agent (AI) messages of the session, in order."""
    return [str(m.content) for m in messages or [] if isinstance(m, AIMessage)]
