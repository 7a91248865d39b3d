"""respond_or_escalate: warm handoff with context; the optional LLM under a groundedness check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from support_agent.conversation import Agent
from support_agent.llm import grounded
from support_agent.services import Services
from tests.conftest import customer_with, new_session, proof, say


class ScriptedChatModel(BaseChatModel):
    """Returns scripted replies in order and records the prompts it saw."""

    replies: list[str]
    seen: list[list[BaseMessage]] = []

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.seen.append(messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.replies.pop(0)))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop)


def _swap_model(services: Services, model: BaseChatModel | None) -> Iterator[None]:
    original = services.chat_model
    services.chat_model = model
    yield
    services.chat_model = original


async def test_human_request_is_a_warm_handoff_with_context(
    services: Services, agent: Agent
) -> None:
    cust = await customer_with(services, "delivered")
    session = new_session()
    await say(agent, session, proof(cust))
    await say(agent, session, f"the {cust['item']} I got arrived broken")
    result = await say(agent, session, "I want to talk to a real person")
    assert result.decision == "escalate"
    packet = result.handoff
    assert packet is not None
    assert packet["reason"] == "customer asked for a human agent"
    assert packet["header"]["customer_id"] == cust["id"]
    assert packet["header"]["tier"] in ("gold", "silver", "standard")
    assert packet["current_issue"]["order_id"] == cust["order_id"]
    assert packet["pending_action"]["target"]["id"] == cust["order_id"]
    assert len(packet["transcript"]) == 3
    assert packet["suggested_resolutions"]


async def test_frustration_escalates(services: Services, agent: Agent) -> None:
    cust = await customer_with(services, "delivered")
    session = new_session()
    await say(agent, session, proof(cust))
    result = await say(
        agent, session, "This is RIDICULOUS and unacceptable, I am furious, worst service ever!!"
    )
    assert result.decision == "escalate"
    assert result.handoff is not None
    assert result.handoff["reason"] == "customer frustration above threshold"


def test_grounded_check() -> None:
    draft = "Order #W1234567 is delivered; 12.50 will be refunded."
    assert grounded(draft, "Good news: #W1234567 was delivered and you'll get 12.50 back.")
    assert grounded("A refund of $1,006.19.", "You'll get 1006.19 back.")  # same amount
    assert not grounded("A refund of $1,006.19.", "You'll get $6.19 back.")
    assert not grounded(draft, "Your order was delivered and you'll get a refund.")


async def test_llm_rewrite_is_used_when_grounded(services: Services, agent: Agent) -> None:
    cust = await customer_with(services, "delivered")
    session = new_session()
    async with services.pool.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT price FROM order_items WHERE tenant_id = 'retail' AND order_id = %s"
                " AND name = %s",
                (cust["order_id"], cust["item"]),
            )
        ).fetchone()
    assert row is not None
    model = ScriptedChatModel(
        replies=[
            "Lovely to hear from you! What can I do for you today?",
            f"So sorry! Your {cust['item']} in order {cust['order_id']}: return or exchange? "
            f"A return refunds ${float(row['price']):,.2f}. Just say yes to go ahead.",
        ]
    )
    swap = _swap_model(services, model)
    next(swap)
    try:
        first = await say(agent, session, proof(cust))
        assert first.reply == "Lovely to hear from you! What can I do for you today?"
        second = await say(agent, session, f"the {cust['item']} I got arrived broken")
        assert second.reply.startswith("So sorry!")
        assert second.decision == "confirm"  # the model rephrases; it does not decide
    finally:
        next(swap, None)


async def test_llm_rewrite_dropping_the_order_id_is_rejected(
    services: Services, agent: Agent
) -> None:
    cust = await customer_with(services, "delivered")
    session = new_session()
    model = ScriptedChatModel(replies=["Hi!", "Sure, I approved a full refund of 999.99 for you."])
    swap = _swap_model(services, model)
    next(swap)
    try:
        await say(agent, session, proof(cust))
        result = await say(agent, session, f"the {cust['item']} I got arrived broken")
        assert str(cust["order_id"]) in result.reply
        assert "999.99" not in result.reply
    finally:
        next(swap, None)
