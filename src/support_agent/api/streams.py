"""Long-lived responses end when their API key is revoked.

A request is authenticated once, when it arrives; a server-sent event stream may then run for
hours. :func:`until_revoked` wraps a stream's events and re-checks the key every
:data:`KEY_RECHECK_S` seconds (one indexed read of ``api_keys``,
:func:`support_agent.tenancy.key_still_valid`): once the key is revoked, or can no longer be
checked (PostgreSQL unreachable: it fails closed), the stream sends an optional last event and
ends, even while the wrapped iterator is waiting for its next event. The client reconnects and
is refused (401).

Usage in a route (any ``AsyncIterator``; the principal comes from ``PrincipalDep``)::

    return EventSourceResponse(
        until_revoked(svc, principal.key_hash, feed(), last=revoked_event())
    )

The wrapped iterator runs in one task of its own (its steps keep one context), is closed when
the stream ends for any reason (revocation, the client leaving, the response cancelled), and its
exceptions propagate to the response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, TypeVar

from sse_starlette import ServerSentEvent

from support_agent.services import Services
from support_agent.tenancy import key_still_valid

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds between two checks of a stream's key: a revoked key's streams end within this (plus
#: one read of ``api_keys``).
KEY_RECHECK_S = 2.0


async def still_valid(services: Services, key_hash: str) -> bool:
    """Whether the key (its SHA-256 hash, ``Principal.key_hash``) may still be used.

    ``False`` for a revoked or deleted key, and when the check itself fails (PostgreSQL
    unreachable): a stream that cannot confirm its key ends (fail closed).
    """
    try:
        return await key_still_valid(services, key_hash)
    except Exception:  # any failure to confirm the key ends the stream
        logger.warning("stream_key_check_failed", exc_info=True)
        return False


def revoked_event() -> ServerSentEvent:
    """The last event of a stream whose key was revoked: ``error`` with ``UNAUTHORIZED``."""
    body = {"error": {"code": "UNAUTHORIZED", "message": "the API key was revoked"}}
    return ServerSentEvent(data=json.dumps(body), event="error")


_DONE = object()


async def until_revoked(
    services: Services,
    key_hash: str,
    events: AsyncIterable[T],
    *,
    every_s: float = KEY_RECHECK_S,
    last: T | None = None,
) -> AsyncIterator[T]:
    """``events``, until they end or the key is found revoked.

    Args:
        services: open services (the key is read from PostgreSQL).
        key_hash: SHA-256 hex digest of the stream's key (``Principal.key_hash``).
        events: the stream's events (an async generator or any async iterable).
        every_s: seconds between two checks of the key (default :data:`KEY_RECHECK_S`).
        last: an event to send when the key is revoked before ending (e.g.
            :func:`revoked_event`); ``None`` sends nothing.

    Yields:
        The events of ``events``, in order; then ``last`` if the key was revoked.

    Raises:
        Exception: whatever ``events`` raises.
    """
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)

    async def pump() -> None:
        try:
            async for item in events:
                await queue.put((item, None))
        except Exception as exc:  # handed to the consumer, which re-raises it
            await queue.put((_DONE, exc))
        else:
            await queue.put((_DONE, None))

    async def watch() -> None:
        while True:
            await asyncio.sleep(every_s)
            if not await still_valid(services, key_hash):
                return

    producer = asyncio.create_task(pump())
    watcher = asyncio.create_task(watch())
    getter: asyncio.Future[Any] | None = None
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():  # the key was revoked (or could not be confirmed)
                getter.cancel()
                logger.info("stream_closed_key_revoked")
                if last is not None:
                    yield last
                return
            item, error = getter.result()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        tasks = [producer, watcher, *([getter] if getter is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        close = getattr(events, "aclose", None)
        if close is not None:
            with contextlib.suppress(RuntimeError):  # already closed by the cancelled pump
                await close()
