"""Trace scanners for erasure tests: every PostgreSQL table and Redis key, searched by value."""

from __future__ import annotations

import json

from support_agent.services import Services


async def scan_postgres(services: Services, needles: list[str]) -> dict[str, int]:
    """Rows in every table of the database whose text or bytes contain any needle."""
    hits: dict[str, int] = {}
    async with services.pool.connection() as conn:
        tables = await (
            await conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
        ).fetchall()
        for t in tables:
            name = t["table_name"]
            cols = await (
                await conn.execute(
                    "SELECT column_name, data_type FROM information_schema.columns"
                    " WHERE table_schema = 'public' AND table_name = %s",
                    (name,),
                )
            ).fetchall()
            clauses = []
            for col in cols:
                ident = '"' + col["column_name"] + '"'
                if col["data_type"] == "bytea":
                    clauses += [f"position(convert_to(%s, 'UTF8') in {ident}) > 0"] * len(needles)
                else:
                    clauses += [f"{ident}::text ILIKE '%%' || %s || '%%'"] * len(needles)
            if not clauses:
                continue
            params = []
            for _col in cols:
                params += needles
            row = await (
                await conn.execute(
                    f'SELECT count(*) AS n FROM "{name}" WHERE ' + " OR ".join(clauses), params
                )
            ).fetchone()
            if row and row["n"]:
                hits[name] = int(row["n"])
    return hits


async def scan_redis(services: Services, needles: list[str]) -> list[str]:
    """Redis keys whose name, string value or stream entries contain any needle."""
    found = []
    async for key in services.redis.scan_iter(count=1000):
        kind = (await services.redis.type(key)).decode()
        if kind == "string":
            blob = key + (await services.redis.get(key) or b"")
        elif kind == "stream":
            blob = key + json.dumps(
                [[i.decode(), {k.decode(): v.decode() for k, v in f.items()}]
                 for i, f in await services.redis.xrange(key)]
            ).encode()  # fmt: skip
        else:
            blob = key
        if any(n.encode() in blob for n in needles):
            found.append(key.decode())
    return found
