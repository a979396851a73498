"""Measure how long a hung server holds a connect: time to DatabaseUnavailableError for a hung
single host, and time to reach host 2 behind a hung host 1, per driver and connect_timeout.

The hung server is a local listener that accepts TCP and never sends a byte.

    DSG_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
    DSG_TEST_MYSQL_URL=mysql+aiomysql://root@127.0.0.1:3306/test \\
    python scripts/measure_hang_bounds.py
"""

from __future__ import annotations

import asyncio
import os
import time

from sqlalchemy import text
from sqlalchemy.engine import make_url

from dsg_lib import AsyncDatabase, DatabaseUnavailableError, DBConfig

PG = os.environ.get("DSG_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
MY = os.environ.get("DSG_TEST_MYSQL_URL", "mysql+aiomysql://root@127.0.0.1:3306/test")
URLS = {
    "postgresql (asyncpg)": PG,
    "mariadb (aiomysql)": make_url(MY).set(drivername="mysql+aiomysql").render_as_string(False),
    "mariadb (asyncmy)": make_url(MY).set(drivername="mysql+asyncmy").render_as_string(False),
}


async def _one(db: AsyncDatabase) -> None:
    async with db.transaction() as session:
        await session.execute(text("SELECT 1"))


async def measure(url: str, port: int, timeout: float) -> tuple[float, float]:
    parsed = make_url(url)
    single = parsed.set(host="127.0.0.1", port=port).render_as_string(False)
    default = 5432 if parsed.get_backend_name() == "postgresql" else 3306
    live = f"{parsed.host}:{parsed.port or default}"
    multi = f"{parsed.drivername}://{parsed.username or ''}@127.0.0.1:{port},{live}/{parsed.database}"

    db = AsyncDatabase(DBConfig({"database_uri": single, "connect_timeout": timeout}))
    started = time.monotonic()
    try:
        await asyncio.wait_for(_one(db), 60)
        raise SystemExit("a hung host answered?")
    except DatabaseUnavailableError:
        hung = time.monotonic() - started
    finally:
        await db.disconnect()

    db = AsyncDatabase(DBConfig({"database_uri": multi, "connect_timeout": timeout}))
    started = time.monotonic()
    try:
        await asyncio.wait_for(_one(db), 60)
        failover = time.monotonic() - started
    finally:
        await db.disconnect()
    return hung, failover


async def main() -> None:
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    print(f"{'driver':<22} {'connect_timeout':>15} {'hung single host':>17} {'host 2 reached':>15}")
    for name, url in URLS.items():
        for timeout in (1.5, 2.0):
            hung, failover = await measure(url, port, timeout)
            print(f"{name:<22} {timeout:>15g} {hung:>16.2f}s {failover:>14.2f}s")
    for writer in held:
        writer.close()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
