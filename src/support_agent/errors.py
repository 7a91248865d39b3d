"""Domain errors of the service.

Hierarchy::

    SupportAgentError              base of every error raised on purpose by this package
    ├── NotFoundError              a tenant, customer, session or order does not exist (→ 404)
    ├── InvalidRequestError        malformed or inconsistent input (→ 422)
    ├── UnauthorizedError          missing or wrong credentials (→ 401)
    ├── SessionEndedError          a message for a session that has ended (→ 409)
    ├── InfrastructureError        a database, cache or model is unavailable (→ 503)
    └── NeedsHumanError            a confirmed action only a human can complete (→ handoff)

The API maps each class to a stable error code and a fixed message; the text of an internal
exception is never shown to a caller.
"""

from __future__ import annotations


class SupportAgentError(Exception):
    """Base class of every error this package raises on purpose.

    Attributes:
        code: stable machine-readable error code used by the API.
        status: HTTP status the API answers with.
    """

    code = "INTERNAL_ERROR"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(SupportAgentError):
    """A tenant, customer, session or order does not exist (or belongs to another tenant)."""

    code = "NOT_FOUND"
    status = 404


class InvalidRequestError(SupportAgentError):
    """Input is malformed or inconsistent with the current state."""

    code = "INVALID_REQUEST"
    status = 422


class UnauthorizedError(SupportAgentError):
    """Missing or invalid credentials."""

    code = "UNAUTHORIZED"
    status = 401


class InfrastructureError(SupportAgentError):
    """A backing service (PostgreSQL, Redis, model) is unavailable."""

    code = "SERVICE_UNAVAILABLE"
    status = 503


class SessionEndedError(SupportAgentError):
    """The session has ended (explicitly or after inactivity); start a new one (→ 409)."""

    code = "SESSION_ENDED"
    status = 409


class NeedsHumanError(SupportAgentError):
    """A confirmed action the agent has no tool for: a human agent completes it (a handoff).

    Raised by a vertical's ``execute``; the graph turns it into a warm handoff, so it never
    reaches an API caller.
    """

    code = "NEEDS_HUMAN"
    status = 409
