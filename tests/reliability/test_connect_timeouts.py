"""A server that accepts TCP and never answers: every connect ends within ``connect_timeout`` per host.

A half-dead node or a blocked proxy completes the TCP handshake and then says
nothing. The drivers' own timeouts do not all cover that: the MySQL drivers
bound only the TCP connect, asyncpg bounds its whole host list at once. Each
test here has a hard outer bound (``asyncio.wait_for``) so that a regression
fails in seconds instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from dsg_lib import AsyncDatabase, DatabaseUnavailableError, DBConfig
from dsg_lib.migrations import _migration_engine
from tests.helpers import MYSQL_URL, POSTGRES_URL

from .conftest import require

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 1.5
#: a hung connect must end within connect_timeout plus this much slack
SLACK = 1.5


@pytest.fixture
async def hung_port() -> AsyncIterator[int]:
    """A local TCP port that accepts connections and never sends a byte."""
    held: list[asyncio.StreamWriter] = []
    forever = asyncio.Event()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await forever.wait()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        yield port
    finally:
        forever.set()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


DRIVERS = {
    "postgresql": lambda: POSTGRES_URL,
    "aiomysql": lambda: MYSQL_URL.replace("+asyncmy", "+aiomysql"),
    "asyncmy": lambda: MYSQL_URL.replace("+aiomysql", "+asyncmy"),
}


@pytest.fixture(params=sorted(DRIVERS))
async def live_url(request: pytest.FixtureRequest) -> str:
    await require("postgresql" if request.param == "postgresql" else "mariadb")
    return DRIVERS[request.param]()


def _hung_single(url: str, port: int) -> str:
    parsed = make_url(url)
    return parsed.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


def _hung_first(url: str, port: int) -> str:
    parsed = make_url(url)
    default = 5432 if parsed.get_backend_name() == "postgresql" else 3306
    live = f"{parsed.host}:{parsed.port or default}"
    user = parsed.username or ""
    return f"{parsed.drivername}://{user}@127.0.0.1:{port},{live}/{parsed.database}"


async def _one(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT 1"))).scalar_one())


async def test_a_hung_single_host_is_unavailable_within_connect_timeout(
    live_url: str, hung_port: int
) -> None:
    db = AsyncDatabase(
        DBConfig({"database_uri": _hung_single(live_url, hung_port), "connect_timeout": TIMEOUT})
    )
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailableError, match="connect_timeout"):
            await asyncio.wait_for(_plain_transaction(db), TIMEOUT + 10)
    finally:
        await db.disconnect()
    assert time.monotonic() - started < TIMEOUT + SLACK


async def _plain_transaction(db: AsyncDatabase) -> None:
    async with db.transaction() as session:
        await session.execute(text("SELECT 1"))


async def test_a_hung_first_host_moves_on_to_the_next(live_url: str, hung_port: int) -> None:
    db = AsyncDatabase(
        DBConfig({"database_uri": _hung_first(live_url, hung_port), "connect_timeout": TIMEOUT})
    )
    try:
        started = time.monotonic()
        assert await asyncio.wait_for(db.run_in_transaction(_one), TIMEOUT + 10) == 1
        assert time.monotonic() - started < TIMEOUT + SLACK
        nodes = db.db_config.nodes
        assert nodes is not None and not nodes.nodes[0].healthy and nodes.current is nodes.nodes[1]
        # the hung host is skipped now: a second connection is immediate
        started = time.monotonic()
        async with db.engine.connect() as one, db.engine.connect() as two:
            assert (await one.execute(text("SELECT 1"))).scalar_one() == 1
            assert (await two.execute(text("SELECT 1"))).scalar_one() == 1
        assert time.monotonic() - started < 1.0
    finally:
        await db.disconnect()


async def test_migrations_honour_connect_timeout(live_url: str, hung_port: int) -> None:
    config = DBConfig({"database_uri": _hung_single(live_url, hung_port), "connect_timeout": TIMEOUT})
    engine = _migration_engine(config)
    started = time.monotonic()
    try:
        with pytest.raises(Exception, match="connect_timeout"):
            await asyncio.wait_for(_connect_once(engine), TIMEOUT + 10)
    finally:
        await engine.dispose()
        await config.dispose()
    assert time.monotonic() - started < TIMEOUT + SLACK


async def _connect_once(engine: object) -> None:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        await conn.execute(text("SELECT 1"))


@pytest.mark.parametrize("driver", sorted(DRIVERS))
async def test_cli_check_against_a_hung_server_ends_within_connect_timeout(driver: str) -> None:
    import socket
    import subprocess
    import sys

    await require("postgresql" if driver == "postgresql" else "mariadb")
    # the kernel completes the TCP handshake for a listening socket; nobody ever answers
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = _hung_single(DRIVERS[driver](), int(listener.getsockname()[1]))
        started = time.monotonic()
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "dsg_lib", "check", url, "-o", f"connect_timeout={TIMEOUT}"],
            capture_output=True,
            text=True,
            timeout=40,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
        )
        elapsed = time.monotonic() - started
    assert done.returncode != 0, done.stdout + done.stderr
    assert "connect_timeout" in done.stderr, done.stderr
    assert elapsed < TIMEOUT + 8, elapsed  # + interpreter start-up and imports


async def test_a_hung_replica_costs_one_connect_timeout(live_url: str, hung_port: int) -> None:
    from sqlalchemy import literal, select

    from dsg_lib import DatabaseOperations

    config = {"database_uri": live_url, "read_replicas": [_hung_single(live_url, hung_port)]}
    db = AsyncDatabase(DBConfig({**config, "connect_timeout": TIMEOUT}))
    try:
        started = time.monotonic()
        rows = await asyncio.wait_for(DatabaseOperations(db).read_query(select(literal(1))), TIMEOUT + 10)
        assert list(rows) == [1]  # served by the primary once the replica failed
        assert time.monotonic() - started < TIMEOUT + SLACK
    finally:
        await db.disconnect()
