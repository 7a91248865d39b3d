"""Domain errors of the service.

Hierarchy::

    SupportAgentError              base of every error raised on purpose by this package
    ├── NotFoundError              a tenant, customer, session or order does not exist (→ 404)
    ├── InvalidRequestError        malformed or inconsistent input (→ 422)
    ├── UnauthorizedError          missing or wrong credentials (→ 401)
    ├── ForbiddenError             a valid key of a kind not allowed here (→ 403)
    ├── ConflictError              the request conflicts with the resource's state (→ 409)
    ├── SessionEndedError          a message for a session that has ended (→ 409)
    ├── TurnInProgressError        the session is busy with another message for too long (→ 409)
    ├── RateLimitedError           the API key sent too many requests (→ 429)
    ├── PayloadTooLargeError       a request body over the size limit (→ 413)
    ├── UnsupportedMediaTypeError  a request body that is not JSON (→ 415)
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
    #: seconds after which a retry may succeed (the API's ``Retry-After``), or ``None``.
    retry_after_s: int | None = None

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


class ForbiddenError(SupportAgentError):
    """A valid credential that may not do this (a publishable widget key on the memory API)."""

    code = "FORBIDDEN"
    status = 403


class ConflictError(SupportAgentError):
    """The request conflicts with the resource's state (an existing thread, nothing to resume)."""

    code = "CONFLICT"
    status = 409


class InfrastructureError(SupportAgentError):
    """A backing service (PostgreSQL, Redis, model) is unavailable."""

    code = "SERVICE_UNAVAILABLE"
    status = 503


class SessionEndedError(SupportAgentError):
    """The session has ended (explicitly or after inactivity); start a new one (→ 409)."""

    code = "SESSION_ENDED"
    status = 409


class TurnInProgressError(SupportAgentError):
    """Another turn of the same session held its lock for longer than the wait bound (→ 409).

    Nothing was read or written; the message can be resent after ``retry_after_s`` seconds.
    """

    code = "TURN_IN_PROGRESS"
    status = 409
    retry_after_s = 1


class RateLimitedError(SupportAgentError):
    """The API key exceeded its tenant's request rate (→ 429 with ``Retry-After``).

    Args:
        message: what was exceeded.
        retry_after_s: whole seconds until the window frees a request (≥ 1).
    """

    code = "RATE_LIMITED"
    status = 429

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)


class PayloadTooLargeError(SupportAgentError):
    """A request body larger than the API accepts (→ 413)."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413


class UnsupportedMediaTypeError(SupportAgentError):
    """A request body sent with a media type other than JSON (→ 415)."""

    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415


class NeedsHumanError(SupportAgentError):
    """A confirmed action the agent has no tool for: a human agent completes it (a handoff).

    Raised by a vertical's ``execute``; the graph turns it into a warm handoff, so it never
    reaches an API caller.
    """

    code = "NEEDS_HUMAN"
    status = 409
