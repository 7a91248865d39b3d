"""Optional chat model (any OpenAI-compatible endpoint) that rewrites grounded template replies.

The deterministic template reply is always built first. With a model configured, the model may
rephrase it for tone, given only the facts the template used; the rewrite is accepted only if it
keeps every order id and amount of the draft (a cheap groundedness check). Any model failure falls
back to the template, so the agent never depends on the model being up.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from support_agent.settings import Settings

logger = logging.getLogger(__name__)

_FACT_RE = re.compile(r"#W\d{7}|\d{1,3}(?:,\d{3})+\.\d{2}|\d+\.\d{2}")

SYSTEM_PROMPT = (
    "You are a customer-support agent. Rewrite the DRAFT reply so it sounds natural and warm, "
    "in at most 4 sentences. Use only the FACTS and the DRAFT: do not add offers, promises, "
    "policies, amounts, dates or ids that are not in them. Keep every order id and amount exactly. "
    "Never reveal email addresses or phone numbers. Reply with the rewritten text only."
)


def make_chat_model(settings: Settings) -> BaseChatModel:
    """A ``ChatOpenAI`` for the configured endpoint (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``)."""
    from langchain_openai import ChatOpenAI

    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "unused"
    return ChatOpenAI(
        model=settings.llm_model,
        base_url=settings.openai_base_url,
        api_key=key,
        timeout=settings.llm_timeout_s,
        max_retries=1,
        temperature=0.2,
    )


def grounded(draft: str, rewrite: str) -> bool:
    """True when the rewrite keeps every order id and amount of the draft."""

    def facts(text: str) -> set[str]:
        return {f.replace(",", "") for f in _FACT_RE.findall(text)}

    return facts(draft) <= facts(rewrite)


async def polish_reply(
    model: BaseChatModel, draft: str, facts: dict[str, Any], customer_text: str
) -> str | None:
    """Ask the model to rephrase ``draft``; ``None`` if it fails or drops a fact."""
    messages = [
        SystemMessage(SYSTEM_PROMPT),
        HumanMessage(
            f"FACTS: {json.dumps(facts, default=str)}\nCUSTOMER: {customer_text}\nDRAFT: {draft}"
        ),
    ]
    try:
        result = await model.ainvoke(messages)
    except (openai.OpenAIError, httpx.HTTPError, TimeoutError) as exc:
        logger.warning("llm_failed", extra={"error": type(exc).__name__})
        return None
    text = result.text if hasattr(result, "text") else str(result.content)
    text = text.strip()
    if not text or not grounded(draft, text):
        logger.info("llm_rewrite_rejected", extra={"reason": "not grounded" if text else "empty"})
        return None
    return text


SUMMARY_PROMPT = (
    "Summarize this customer-support conversation for the customer's long-term memory in at most "
    "3 sentences: what the customer reported, what was proposed or done, and what is still open "
    "or promised. Use only facts from the transcript and the DRAFT; keep every order id and amount "
    "exactly. Never include email addresses or phone numbers. Reply with the summary only."
)


async def summarize_conversation(
    model: BaseChatModel, draft: str, customer_lines: list[str], agent_lines: list[str]
) -> str | None:
    """An LLM episode summary, or ``None`` (model failed or dropped a fact of the draft)."""
    transcript = "\n".join(
        [f"CUSTOMER: {line}" for line in customer_lines]
        + [f"AGENT: {line}" for line in agent_lines]
    )
    messages = [SystemMessage(SUMMARY_PROMPT), HumanMessage(f"{transcript}\nDRAFT: {draft}")]
    try:
        result = await model.ainvoke(messages)
    except (openai.OpenAIError, httpx.HTTPError, TimeoutError) as exc:
        logger.warning("llm_summary_failed", extra={"error": type(exc).__name__})
        return None
    text = (result.text if hasattr(result, "text") else str(result.content)).strip()
    return text if text and grounded(draft, text) else None
