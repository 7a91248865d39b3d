"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class CustomerIdentity(BaseModel):
    """Identifiers the channel already knows: email, phone, customer_id, or name + zip."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=32)
    customer_id: str | None = Field(default=None, max_length=100)
    name: str | None = Field(default=None, max_length=200)
    zip: str | None = Field(default=None, max_length=16)

    @model_validator(mode="after")
    def _name_needs_zip(self) -> CustomerIdentity:
        if (self.name is None) != (self.zip is None):
            raise ValueError("name and zip must be given together")
        return self


class ChatRequest(BaseModel):
    """``POST /v1/chat``: one customer message."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field(default="chat", min_length=1, max_length=32, pattern=r"^[a-z_]+$")
    customer: CustomerIdentity | None = None
    session_id: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$",
        description="continue this session; absent: start one. With a widget key only a "
        "session the server issued, sent with its X-Visitor-Token header",
    )  # fmt: skip
    message: str = Field(min_length=1, max_length=4000)
    message_id: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$",
        description="the client's id of this message (idempotency key): a message resent with "
        "the same id (after a broken connection) gets the same answer and is not answered "
        "twice; send it with your own session_id so a first message can be resent too "
        "(server keys: a widget key's first message starts a new session each time)",
    )  # fmt: skip


class ChatResponse(BaseModel):
    """The agent's answer to one message."""

    session_id: str
    reply: str
    decision: Literal[
        "respond", "ask_identification", "confirm", "execute", "deny", "escalate", "end"
    ]
    intent: str | None
    actions: list[dict[str, Any]]
    handoff: dict[str, Any] | None
    approval: dict[str, Any] | None = Field(
        default=None,
        description="the proposed write waiting for a yes (LangChain human-in-the-loop shape: "
        "action_requests with name, args, description; review_configs); the next message "
        "answers it",
    )
    visitor_token: str | None = Field(
        default=None,
        description="a widget key's new session only: the visitor token that owns it (also in "
        "the X-Visitor-Token header), shown this once; send it in the X-Visitor-Token header "
        "with every later message and the session's end",
    )


class EndSessionResponse(BaseModel):
    """``POST /v1/sessions/{id}/end``: the session is closed and its memory job queued."""

    session_id: str
    status: Literal["ended"]
    memory_job: Literal["pending", "enqueued", "done", "dead"] | None


class ErrorBody(BaseModel):
    """``{"error": {"code": ..., "message": ...}}``."""

    error: dict[str, str]
