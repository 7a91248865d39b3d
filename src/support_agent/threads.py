"""What a conversation is called, one name per concept, used the same way in code and logs.

- **session**: one conversation between a customer and the agent on one channel, from its first
  message until it ends (explicitly or after ``SESSION_IDLE_TIMEOUT_S`` of silence); its id is
  ``session_id`` (1-100 letters, digits, ``-`` or ``_``). The public memory API calls a session a
  *conversation* (``conversationId``, ``totalConversations``), as the reference API does.
- **thread**: the LangGraph thread that checkpoints a session's working memory;
  ``thread_id = "{tenant_id}:{session_id}"`` (:func:`thread_id`), so ids never collide across
  tenants. Under ``langgraph dev`` the server's thread id is the session id.
- **interaction**: the CRM's record of a session (``interactions`` row, ``id = session_id``),
  with its messages, outcome and summary.
- **episode**: the L3 memory of a session (its summary with an embedding), written when the
  session ends.
- **turn**: one customer message and the agent's answer: one run of the graph.
"""

from __future__ import annotations

import re

from support_agent.errors import InvalidRequestError

_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def thread_id(tenant_id: str, session_id: str) -> str:
    """The checkpointed thread of a session: ``"{tenant_id}:{session_id}"``."""
    return f"{tenant_id}:{session_id}"


def validate_session_id(session_id: str) -> str:
    """Return ``session_id`` if well-formed.

    Raises:
        InvalidRequestError: not 1-100 characters of letters, digits, ``-`` or ``_``.
    """
    if not _SESSION_ID.match(session_id):
        raise InvalidRequestError("session_id must be 1-100 characters of letters, digits, - or _")
    return session_id
