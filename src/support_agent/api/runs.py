"""Runs of the graph endpoint: background turns whose events any number of clients stream.

A run is one turn of a session (``conversation.stream_turn``) started by ``POST
/threads/{id}/runs[/stream|/wait]``. It runs as a task of the server process, independent of the
request that started it: a client that drops its stream loses nothing, and reconnects with ``GET
/threads/{id}/runs/{run}/stream`` and ``Last-Event-ID`` to receive the events it missed
(:meth:`RunRegistry.subscribe`). Each event has a sequence number (the SSE ``id``).

Events (the LangGraph API's): ``metadata`` (``{"run_id", "attempt"}``) first; then, as asked by
``stream_mode``, ``values`` (the thread's state after each step; when the run stops for consent,
a last one with ``__interrupt__``), ``updates`` (``{node: update}``), ``messages``
(``[message chunk, metadata]`` for ``messages-tuple``) and ``custom``; ``error`` (``{"error":
code, "message"}``) when the run failed or was cancelled; ``end`` (``{"run_id", "status"}``)
last.

The registry lives in one process: a run's events are streamed, and the run cancelled, through
the process that runs it. Runs are also recorded in ``graph_runs``, so any process answers
``GET`` on them and waits for their end on ``join``; a stream or cancel sent to another process
is answered 409 (``api.graph_routes``). Finished
runs' events are kept :data:`KEEP_FINISHED_S` seconds for late joiners.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from typing import Any, Literal

import psycopg
from langchain_core.messages import BaseMessage
from langgraph.types import Interrupt, StreamMode
from langgraph_sdk.schema import Run as SdkRun
from pydantic import BaseModel

from support_agent.conversation import Agent, stream_turn
from support_agent.errors import SupportAgentError
from support_agent.threads import thread_id as checkpoint_thread

logger = logging.getLogger(__name__)

#: Seconds a finished run's events stay available to ``join``.
KEEP_FINISHED_S = 300.0
#: The graph's one assistant (the LangGraph API derives an assistant id from the graph id).
GRAPH_ID = "support_agent"
ASSISTANT_ID = str(uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), GRAPH_ID))

#: Client stream modes → the graph's.
STREAM_MODES: dict[str, StreamMode] = {
    "values": "values",
    "updates": "updates",
    "messages-tuple": "messages",
    "custom": "custom",
}

#: The keys of a thread's state a publishable widget key may see: the conversation itself, not
#: the Customer 360, memory, policy or ranking behind it.
PUBLIC_KEYS = ("messages", "decision", "awaiting_consent", "__interrupt__")

RunStatus = Literal["pending", "running", "success", "error", "interrupted"]


def to_jsonable(value: Any) -> Any:
    """``value`` as JSON-ready data: messages as LangChain's dicts, interrupts as ``{value, id}``.

    Dates become ISO-8601 strings, decimals floats, tuples and sets lists, dataclasses and
    pydantic models dicts; anything else its ``str``.
    """
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, BaseMessage):
        return to_jsonable(value.model_dump())
    if isinstance(value, Interrupt):
        return {"value": to_jsonable(value.value), "id": value.id, "response_schema": {}}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, BaseModel):
        return to_jsonable(value.model_dump())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    return str(value)


def public_values(values: dict[str, Any], full: bool) -> dict[str, Any]:
    """The state a caller may see: all of it (server keys) or :data:`PUBLIC_KEYS` (widget keys).

    A widget key also sees whether a colleague was called in (``handoff: {"status": "queued"}``)
    but not the panel prepared for them.
    """
    if full:
        return values
    out = {k: values[k] for k in PUBLIC_KEYS if k in values}
    if values.get("handoff"):
        out["handoff"] = {"status": "queued"}
    return out


@dataclass
class Run:
    """One run and its events.

    Attributes:
        run_id: the run's id (a UUID string).
        tenant_id: the tenant of the key that started it.
        thread_id: the client's thread id (= session id).
        assistant_id: the assistant it ran.
        stream_mode: the client stream modes asked for.
        status: ``pending`` | ``running`` | ``success`` | ``error`` | ``interrupted`` (cancelled).
        events: ``(sequence, event, data)``, in order.
        values: the last state (JSON-ready), with ``__interrupt__`` when it stopped for consent.
        error: the error event's data when it failed.
    """

    run_id: str
    tenant_id: str
    thread_id: str
    assistant_id: str
    stream_mode: list[str]
    status: RunStatus = "pending"
    events: list[tuple[int, str, Any]] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    failure: SupportAgentError | None = field(default=None, repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    finished_at: float | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition, repr=False)

    @property
    def done(self) -> bool:
        """Whether the run has finished (its ``end`` event is out)."""
        return self.finished_at is not None

    async def emit(self, event: str, data: Any) -> None:
        """Append an event and wake the subscribers."""
        async with self._changed:
            self.events.append((len(self.events) + 1, event, data))
            self._changed.notify_all()

    def _ready(self, sent: int) -> bool:
        return len(self.events) > sent or self.done

    async def subscribe(self, after: int = 0) -> AsyncIterator[tuple[int, str, Any]]:
        """The run's events after sequence number ``after``, live until its ``end`` event."""
        sent = after
        while True:
            async with self._changed:
                await self._changed.wait_for(partial(self._ready, sent))
                fresh = self.events[sent:]
            for item in fresh:
                yield item
            sent += len(fresh)
            if self.done and sent >= len(self.events):
                return

    def as_dict(self) -> SdkRun:
        """The run as ``langgraph_sdk.schema.Run``."""
        return {
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "assistant_id": self.assistant_id,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": datetime.now(UTC),
            "metadata": {},
            "multitask_strategy": "enqueue",
            "cancel_reason": "cancelled" if self.status == "interrupted" else None,
        }


@dataclass(frozen=True)
class TurnSpec:
    """What a run does: one customer message, or the answer to the awaited proposal.

    Attributes:
        channel: the session's channel when the run starts it.
        message: the customer's message, or ``None`` with ``resume``.
        identity: identifiers the channel supplies (server keys, or a verified widget token).
        resume: the resume value of ``command.resume``.
        verified_customer_id: the customer of a verified site token.
        client: the client's address as the API saw it (behind ``TRUSTED_PROXIES``), for the
            per-address limit on verification attempts.
    """

    channel: str
    message: str | None
    identity: dict[str, str] | None
    resume: Any = None
    verified_customer_id: str | None = None
    client: str | None = None


class RunRegistry:
    """The runs of this process (see the module docstring)."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        self._runs: dict[str, Run] = {}

    def get(self, tenant_id: str, thread_id: str, run_id: str) -> Run | None:
        """A run of this process, if it belongs to that tenant and thread."""
        self._prune()
        run = self._runs.get(run_id)
        if run is None or run.tenant_id != tenant_id or run.thread_id != thread_id:
            return None
        return run

    def _prune(self) -> None:
        cutoff = time.monotonic() - KEEP_FINISHED_S
        for run_id in [r for r, run in self._runs.items() if (run.finished_at or 1e18) < cutoff]:
            del self._runs[run_id]

    async def start(
        self, tenant_id: str, thread_id: str, assistant_id: str, stream_mode: list[str],
        spec: TurnSpec,
    ) -> Run:  # fmt: skip
        """Record and start a run; returns at once (the run goes on in the background)."""
        run = Run(
            run_id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            thread_id=thread_id,
            assistant_id=assistant_id,
            stream_mode=stream_mode,
        )
        async with self._agent.services.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO graph_runs (run_id, tenant_id, thread_id, assistant_id, metadata)"
                " VALUES (%s, %s, %s, %s, %s)",
                (run.run_id, tenant_id, thread_id, assistant_id,
                 json.dumps({"stream_mode": stream_mode})),
            )  # fmt: skip
            await conn.execute(
                "UPDATE graph_threads SET status = 'busy', updated_at = now(),"
                " metadata = metadata || %s WHERE tenant_id = %s AND thread_id = %s",
                (json.dumps({"graph_id": GRAPH_ID, "assistant_id": assistant_id}),
                 tenant_id, thread_id),
            )  # fmt: skip
        self._runs[run.run_id] = run
        await run.emit("metadata", {"run_id": run.run_id, "attempt": 1})
        run.task = asyncio.create_task(self._execute(run, spec), name=f"run:{run.run_id}")
        return run

    async def cancel(self, run: Run) -> None:
        """Cancel a run: a turn in progress is rolled back, so the thread stays as it was."""
        if run.task is not None and not run.task.done():
            run.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run.task

    async def close(self) -> None:
        """Cancel every run still going (shutdown)."""
        for run in list(self._runs.values()):
            await self.cancel(run)

    async def _execute(self, run: Run, spec: TurnSpec) -> None:
        modes = [STREAM_MODES[m] for m in run.stream_mode if m in STREAM_MODES]
        graph_modes: list[StreamMode] = sorted({"values", "updates", *modes})
        status: RunStatus = "success"
        interrupts: list[Any] = []
        run.status = "running"
        try:
            async for mode, chunk in stream_turn(
                self._agent, tenant_id=run.tenant_id, channel=spec.channel,
                session_id=run.thread_id, message=spec.message, identity=spec.identity,
                resume=spec.resume, verified_customer_id=spec.verified_customer_id,
                stream_mode=graph_modes, client=spec.client,
            ):  # fmt: skip
                await self._forward(run, mode, chunk, interrupts)
            if interrupts:
                run.values = {**run.values, "__interrupt__": interrupts}
                if "values" in run.stream_mode:
                    await run.emit("values", run.values)
        except asyncio.CancelledError:
            status = "interrupted"
            run.error = {"error": "CANCELLED", "message": "the run was cancelled; nothing changed"}
            await run.emit("error", run.error)
        except SupportAgentError as exc:
            status = "error"
            run.failure = exc
            run.error = {"error": exc.code, "message": exc.message}
            await run.emit("error", run.error)
        except Exception as exc:  # reported to the client as an error event, and logged
            logger.exception("run_failed", extra={"error": type(exc).__name__})
            status = "error"
            run.failure = SupportAgentError("internal error")  # 500 INTERNAL_ERROR on runs/wait
            run.error = {"error": "INTERNAL_ERROR", "message": "internal error"}
            await run.emit("error", run.error)
        finally:
            run.status = status
            await asyncio.shield(self._record_end(run, bool(interrupts)))
            await run.emit("end", {"run_id": run.run_id, "status": status})
            async with run._changed:
                run.finished_at = time.monotonic()
                run._changed.notify_all()

    async def _forward(self, run: Run, mode: str, chunk: Any, interrupts: list[Any]) -> None:
        """Send one graph stream item as the client's event, if it asked for its mode."""
        if mode == "values":
            if set(chunk) == {"__interrupt__"}:  # the run stopped for consent
                interrupts[:] = to_jsonable(chunk["__interrupt__"])
                return
            run.values = to_jsonable(chunk)
            if "values" in run.stream_mode:
                await run.emit("values", run.values)
        elif mode == "updates":
            if chunk.get("__interrupt__"):
                interrupts[:] = to_jsonable(chunk["__interrupt__"])
            if "updates" in run.stream_mode:
                await run.emit("updates", to_jsonable(chunk))
        elif mode == "messages" and "messages-tuple" in run.stream_mode:
            message, metadata = chunk
            meta = {k: metadata.get(k) for k in ("langgraph_node", "langgraph_step", "run_id")}
            await run.emit("messages", [to_jsonable(message), to_jsonable(meta)])
        elif mode == "custom" and "custom" in run.stream_mode:
            await run.emit("custom", to_jsonable(chunk))

    async def _record_end(self, run: Run, interrupted: bool) -> None:
        """Write the run's outcome and the thread's status (idle, interrupted).

        A run that succeeded knows whether it stopped for consent; a failed or cancelled one was
        rolled back, so the thread's checkpoint says whether an earlier proposal still waits.
        """
        try:
            async with self._agent.services.pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "UPDATE graph_runs SET status = %s, updated_at = now() WHERE run_id = %s",
                    (run.status, run.run_id),
                )
                if run.status != "success":
                    state = await self._agent.graph.aget_state(
                        {
                            "configurable": {
                                "thread_id": checkpoint_thread(run.tenant_id, run.thread_id)
                            }
                        }
                    )
                    interrupted = bool(state.interrupts)
                await conn.execute(
                    "UPDATE graph_threads SET status = %s, updated_at = now()"
                    " WHERE tenant_id = %s AND thread_id = %s",
                    ("interrupted" if interrupted else "idle", run.tenant_id, run.thread_id),
                )
        except (psycopg.Error, SupportAgentError) as exc:  # the events still reach the clients
            logger.warning("run_record_failed", extra={"error": type(exc).__name__})
