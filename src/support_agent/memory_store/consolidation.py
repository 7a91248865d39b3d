"""Consolidation: what one finished session becomes in long-term memory.

A memory job (``memory_jobs`` row, queued by ``memory_store.pipeline``) carries what the session
recorded (``nodes.write_memory.job_payload``). Consolidating it is two steps:

1. :func:`prepare`, outside any transaction: the episode (extractive and deterministic; an LLM
   summary when a chat model is configured, kept only if grounded) and the facts extracted from
   the transcript (language via ``lingua``, mood, tone, personal details);
2. :func:`apply_batch`, one transaction for a batch and a savepoint per job: lock the job row;
   if it is already done (a replay) or the customer was erased, stop; write L1/L2/L4
   (``layers.record_session``), the interaction's summary, and mark the job done. The episode
   itself is put in the store by the worker, keyed by session id, so a replay overwrites the
   same key.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from support_agent.memory_store.episodes import build_episode
from support_agent.memory_store.extract import (
    detect_language,
    detect_mood,
    detect_timezone,
    detect_tone,
    personal_details,
)
from support_agent.memory_store.layers import SessionMemory, record_session
from support_agent.services import AsyncConnection, Services
from support_agent.state import Episode


@dataclass(frozen=True)
class Prepared:
    """A job's episode and extracted facts, computed before its transaction."""

    episode: Episode
    language: str | None
    mood: str
    tone: str | None
    details: list[str]
    started_at: datetime
    ended_at: datetime


async def prepare(services: Services, job: dict[str, Any]) -> Prepared:
    """Build a job's episode and extract its facts (see the module docstring).

    Raises:
        KeyError, ValueError: a malformed payload (the worker retries, then dead-letters it).
    """
    p = job["payload"]
    lines: list[str] = p.get("customer_lines", [])
    ended_at = datetime.fromisoformat(p["ended_at"])
    episode = build_episode(
        session_id=job["session_id"],
        channel=p["channel"],
        intent=p.get("intent"),
        outcome=p["outcome"],
        issue=p.get("issue"),
        executed=p.get("executed", []),
        customer_lines=lines,
        pending_action=p.get("pending_action"),
        action_words=p.get("action_words") or {},
        now=ended_at,
    )
    if services.chat_model is not None:
        from support_agent.llm import summarize_conversation

        better = await summarize_conversation(
            services.chat_model, episode["summary"], lines, p.get("agent_lines", [])
        )
        if better is not None:
            episode["summary"] = better
    frustrations = [float(t.get("frustration", 0.0)) for t in p.get("turns", [])]
    return Prepared(
        episode=episode,
        language=await asyncio.to_thread(detect_language, lines),
        mood=detect_mood(frustrations, lines),
        tone=detect_tone(lines),
        details=personal_details(lines),
        ended_at=ended_at,
        started_at=datetime.fromisoformat(p.get("started_at") or p["ended_at"]),
    )


async def apply_batch(
    services: Services, items: list[tuple[dict[str, Any], Prepared]]
) -> list[bool | Exception]:
    """Apply several jobs in one PostgreSQL transaction, each under its own savepoint.

    One commit (one WAL flush) for the batch instead of one per job; a job that fails rolls
    back to its savepoint alone and the others still commit.

    Returns:
        Per item, in order: ``True`` (applied), ``False`` (already applied or erased), or the
        exception that rolled it back (the caller retries it).

    Raises:
        psycopg.Error: the batch's connection or commit failed (nothing was applied).
    """
    outcomes: list[bool | Exception] = []
    async with services.pool.connection() as conn, conn.transaction():
        for job, work in items:
            try:
                async with conn.transaction():  # a savepoint
                    outcomes.append(await _apply_in(conn, job, work))
            except Exception as exc:  # this job alone is rolled back; the caller retries it
                outcomes.append(exc)
    return outcomes


async def _apply_in(conn: AsyncConnection, job: dict[str, Any], work: Prepared) -> bool:
    """Apply one job on the caller's connection, inside its transaction.

    See the module docstring, step 2. Returns False if it was already applied or erased.
    """
    p = job["payload"]
    t, cid, session = job["tenant_id"], job["customer_id"], job["session_id"]
    row = await (
        await conn.execute(
            "SELECT j.status, c.id IS NOT NULL AS customer, c.address->>'state' AS state"
            " FROM memory_jobs j LEFT JOIN customers c ON c.tenant_id = j.tenant_id AND c.id = %s"
            " WHERE j.tenant_id = %s AND j.session_id = %s FOR UPDATE OF j",
            (cid, t, session),
        )
    ).fetchone()
    if row is None or row["status"] in ("done", "dead") or not row["customer"]:
        return False  # applied already, or the job or the customer was erased
    pending_target = (p.get("pending_action") or {}).get("target") or {}
    await record_session(conn, t, cid, SessionMemory(
        session_id=session,
        channel=p["channel"],
        language=work.language,
        timezone=detect_timezone(p.get("customer_lines", []), row["state"]),
        started_at=work.started_at,
        ended_at=work.ended_at,
        outcome=p["outcome"],
        mood=work.mood,
        tone=work.tone,
        details=work.details,
        complaint=any(turn.get("intent") == "complaint" for turn in p.get("turns", [])),
        promises=list(work.episode["promises"]),
        promise_subject=pending_target.get("id"),
        kept_subjects=[a["subject_id"] for a in p.get("executed", []) if a.get("subject_id")],
    ))  # fmt: skip
    await conn.execute(
        "UPDATE interactions SET summary = %s WHERE tenant_id = %s AND id = %s",
        (work.episode["summary"], t, session),
    )
    await conn.execute(
        "UPDATE memory_jobs SET status = 'done', processed_at = now(),"
        " attempts = attempts + 1 WHERE tenant_id = %s AND session_id = %s",
        (t, session),
    )
    return True
