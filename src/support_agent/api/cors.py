"""CORS for the chat widget: the origins the tenants allow, read from their packs at run time.

A browser page embedding the widget calls the graph endpoint from another origin, so the API
answers CORS preflights (Starlette's ``CORSMiddleware``) for every origin some tenant lists in
``widget.allowed_origins``. A preflight carries no key, so it is checked against every tenant;
the request itself then carries the widget key, and ``deps.get_principal_dep`` refuses (403) an
origin that key's own tenant does not allow.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

#: Seconds the union of the tenants' allowed origins is cached.
ORIGINS_TTL_S = 30.0


class TenantCORSMiddleware(CORSMiddleware):
    """``CORSMiddleware`` whose allowed origins are the tenants' (see the module docstring).

    Args:
        app: the wrapped ASGI app.
        state: the FastAPI app's ``state`` (its ``agent`` is set by the lifespan).
    """

    def __init__(self, app: ASGIApp, state: Any) -> None:
        super().__init__(
            app,
            allow_origins=(),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=[
                "authorization",
                "content-type",
                "x-api-key",
                "last-event-id",
                "x-visitor-token",
            ],
            expose_headers=["Content-Location", "Location", "Retry-After", "X-Visitor-Token"],
            max_age=600,
        )
        self._state = state
        self._origins: frozenset[str] = frozenset()
        self._read_at = 0.0

    def is_allowed_origin(self, origin: str) -> bool:
        """Whether any tenant allows ``origin`` (cached :data:`ORIGINS_TTL_S` seconds)."""
        agent = getattr(self._state, "agent", None)
        if agent is None:
            return False
        if time.monotonic() - self._read_at > ORIGINS_TTL_S:
            tenants = agent.services.tenants
            self._origins = frozenset().union(
                *(tenants.get(t).config.widget.origins for t in tenants.ids())
            )
            self._read_at = time.monotonic()
        return origin.rstrip("/") in self._origins
