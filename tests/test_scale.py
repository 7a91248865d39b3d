"""Scale-out: background duties run once per cluster (the leader lease), on the real database."""

from __future__ import annotations

import dataclasses

from support_agent.conversation import Agent, end_session
from support_agent.infra.leader import LeaderLease
from support_agent.memory_store.pipeline import MemoryWorker
from support_agent.services import Services
from tests.conftest import customer_with, job_status, new_session, say


async def test_one_process_holds_a_lease_until_it_leaves_or_its_connection_dies(
    services: Services,
) -> None:
    url = services.locks._conninfo  # noqa: SLF001 - the database the service uses
    one, two = LeaderLease(url, "test:lease"), LeaderLease(url, "test:lease")
    other = LeaderLease(url, "test:another-duty")
    try:
        assert await one.is_leader()
        assert not await two.is_leader()
        assert await one.is_leader()  # asked again: still the holder, and still alone
        assert not await two.is_leader()
        assert await other.is_leader()  # another name is another lease
        await one.close()  # the holder leaves: the next to ask takes over
        assert await two.is_leader()
        assert not await one.is_leader()
        # The holder's connection dies (a crashed process, a network cut): PostgreSQL releases
        # the lock at once; the old holder notices on its next ask and another takes over.
        async with services.pool.connection() as conn:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                " AND objid = (hashtextextended('test:lease', 0) & 4294967295)::oid"
                " AND pid <> pg_backend_pid()"
            )
        holders = [await lease.is_leader() for lease in (two, one)]
        holders += [await lease.is_leader() for lease in (two, one)]
        assert holders[2:] in ([True, False], [False, True])  # exactly one, whichever asked
    finally:
        for lease in (one, two, other):
            await lease.close()


async def test_only_the_lease_holder_relays_the_outbox(services: Services, agent: Agent) -> None:
    """A job left ``pending`` in PostgreSQL (Redis was down when the session ended) is published
    by the one worker holding the background lease, not by every worker."""
    cust = await customer_with(services, "delivered")
    session = new_session()
    await say(agent, session, f"my email is {cust['email']}")
    await say(agent, session, "where is my order?")
    await end_session(agent, tenant_id="retail", session_id=session)
    await MemoryWorker(services, backoff_base_s=0.0).drain()
    assert await job_status(services, session) == "done"
    async with services.pool.connection() as conn:  # as if Redis had been down at the end
        await conn.execute(
            "UPDATE memory_jobs SET status = 'pending', created_at = now() - interval '1 minute'"
            " WHERE tenant_id = 'retail' AND session_id = %s",
            (session,),
        )
    url = services.locks._conninfo  # noqa: SLF001
    holder, follower = LeaderLease(url, "test:relay"), LeaderLease(url, "test:relay")
    try:
        assert await holder.is_leader()
        following = MemoryWorker(dataclasses.replace(services, leader=follower))
        await following.run_once(block_ms=None)
        assert await job_status(services, session) == "pending"  # not its duty
        leading = MemoryWorker(dataclasses.replace(services, leader=holder))
        await leading.run_once(block_ms=None)
        assert await job_status(services, session) in ("enqueued", "done")
    finally:
        await holder.close()
        await follower.close()
