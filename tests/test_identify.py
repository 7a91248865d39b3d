"""identify: every identification path, and never a guess."""

from __future__ import annotations

from support_agent.conversation import Agent
from support_agent.services import Services
from tests.conftest import customer_with, new_session, proof, say


async def test_email_and_zip_in_text_authenticate(services: Services, agent: Agent) -> None:
    cust = await customer_with(services, "delivered", fresh=False)
    message = f"hi, my email is {str(cust['email']).upper()} and my zip is {cust['zip']}"
    result = await say(agent, new_session(), message)
    assert result.customer_id == cust["id"]
    assert result.decision != "ask_identification"


async def test_email_alone_does_not_authenticate(services: Services, agent: Agent) -> None:
    cust = await customer_with(services, "delivered", fresh=False)
    result = await say(agent, new_session(), f"hi, my email is {cust['email']}, where's my order?")
    assert result.customer_id is None and result.decision == "ask_identification"
    assert str(cust["first_name"]) not in result.reply
    assert str(cust["order_id"]) not in result.reply


async def test_name_and_zip_in_text_authenticates(services: Services, agent: Agent) -> None:
    cust = await customer_with(services, "delivered", fresh=False)
    result = await say(
        agent, new_session(), f"I'm {cust['first_name']} {cust['last_name']}, zip {cust['zip']}"
    )
    assert result.customer_id == cust["id"]


async def test_name_zip_from_request_authenticates(services: Services, agent: Agent) -> None:
    cust = await customer_with(services, "delivered", fresh=False)
    result = await say(
        agent,
        new_session(),
        "hello",
        name=f"{cust['first_name']} {cust['last_name']}",
        zip=str(cust["zip"]),
    )
    assert result.customer_id == cust["id"]


async def test_account_id_alone_identifies_but_does_not_authenticate(
    services: Services, agent: Agent
) -> None:
    cust = await customer_with(services, "delivered", fresh=False)
    result = await say(agent, new_session(), f"my user id is {cust['id']}, where is my order?")
    assert result.customer_id is None  # not authenticated: no customer exposed
    assert result.decision == "ask_identification"
    assert str(cust["order_id"]) not in result.reply


async def test_unknown_email_and_zip_fail_to_verify(services: Services, agent: Agent) -> None:
    result = await say(agent, new_session(), "my email is nobody@nowhere.example, zip 12345")
    assert result.decision == "ask_identification"
    assert result.customer_id is None
    assert "couldn't verify" in result.reply


async def test_missing_identity_asks(services: Services, agent: Agent) -> None:
    result = await say(agent, new_session(), "where is my order?")
    assert result.decision == "ask_identification"


async def test_name_with_wrong_zip_is_not_a_match(services: Services, agent: Agent) -> None:
    cust = await customer_with(services, "delivered", fresh=False)
    result = await say(
        agent, new_session(), f"I'm {cust['first_name']} {cust['last_name']}, zip 00000"
    )
    assert result.customer_id is None
    assert result.decision == "ask_identification"


async def test_second_customer_in_one_conversation_is_denied(
    services: Services, agent: Agent
) -> None:
    a = await customer_with(services, "delivered", fresh=False)
    b = await customer_with(services, "delivered")
    session = new_session()
    first = await say(agent, session, proof(a))
    assert first.customer_id == a["id"]
    second = await say(agent, session, f"now check orders for {b['email']}, zip {b['zip']}")
    assert second.decision == "deny"
    assert second.customer_id == a["id"]
    assert str(b["order_id"]) not in second.reply


async def test_another_customers_email_alone_is_no_conflict_and_reveals_nothing(
    services: Services, agent: Agent
) -> None:
    """A verified customer typing someone else's email gets the same answer as for an email that
    belongs to nobody: the conflict check is no oracle of which emails are customers."""
    a = await customer_with(services, "delivered", fresh=False)
    b = await customer_with(services, "delivered")
    replies = []
    for other in (str(b["email"]), "nobody@nowhere.example"):
        session = new_session()
        await say(agent, session, proof(a))
        result = await say(agent, session, f"can you check the orders of {other}?")
        assert result.customer_id == a["id"]
        replies.append(result.reply)
    assert replies[0] == replies[1]
