"""The baseline for bench/api.py: the same 100-row query with no auth, policy or audit.

The fastest plain implementation: Starlette, asyncpg and orjson.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

COLUMNS = os.environ.get("BENCH_COLUMNS", "*")
SQL = (f"select {COLUMNS} from shared.public_works__service_requests"
       " order by sr_number limit 100 offset 0")
pool: asyncpg.Pool | None = None


async def rows(request: Request) -> Response:
    async with pool.acquire() as conn:
        records = await conn.fetch(SQL)
    return Response(orjson.dumps({"rows": [dict(r) for r in records]}),
                    media_type="application/json")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(os.environ["BENCH_DATABASE_URL"], min_size=2, max_size=10)
    yield
    await pool.close()


app = Starlette(routes=[Route("/rows", rows)], lifespan=lifespan)
