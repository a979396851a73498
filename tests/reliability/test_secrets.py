"""A password with URL-special characters never shows up: not in repr/str, logs (TRACE),
exception messages, ``to_dict()``, ``health_check()`` or the formatted exception chain."""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from loguru import logger
from sqlalchemy import literal, select, text

from dsg_lib import AsyncDatabase, DatabaseError, DatabaseOperations, DatabaseUnavailableError, DBConfig

from .conftest import require

pytestmark = pytest.mark.reliability

PASSWORD = "p@ss:w/rd%40x"
FORMS = {
    PASSWORD,
    quote(PASSWORD, safe=""),
    quote_plus(PASSWORD),
    quote(PASSWORD),
    "p@ss:w",
    "w/rd%40x",
    "%2540x",
}


def _leaks(text: str) -> list[str]:
    return sorted(form for form in FORMS if form in text)


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(
        lambda message: lines.append(str(message)),
        level="TRACE",
        format="{level} {name}:{function} {message} {extra} {exception}",
        backtrace=True,
        diagnose=True,  # variable values in tracebacks: the harshest setting
    )
    logger.enable("dsg_lib")
    logger.enable("sqlalchemy")
    try:
        yield lines
    finally:
        logger.remove(sink)
        logger.disable("dsg_lib")  # the session default of tests/conftest.py


CASES = {
    "pg_closed_port_parts": {
        "dialect": "postgresql",
        "host": "127.0.0.1",
        "port": 1,
        "username": "app",
        "password": PASSWORD,
        "database": "test",
    },
    "pg_closed_port_uri": {
        "database_uri": f"postgresql+asyncpg://app:{quote(PASSWORD, safe='')}@127.0.0.1:1/test",
    },
    "pg_wrong_user_and_password": {
        "dialect": "postgresql",
        "host": "127.0.0.1",
        "port": 5432,
        "username": "dsg_no_such_user",
        "password": PASSWORD,
        "database": "test",
    },
    "pg_wrong_password_uri": {
        "database_uri": f"postgresql://dsg_no_such_user:{quote(PASSWORD, safe='')}@127.0.0.1:5432/test",
    },
    "mariadb_closed_port": {
        "dialect": "mariadb",
        "host": "127.0.0.1",
        "port": 1,
        "username": "root",
        "password": PASSWORD,
        "database": "test",
    },
    "mariadb_wrong_password_root": {
        "dialect": "mysql",
        "host": "127.0.0.1",
        "port": 3306,
        "username": "root",
        "password": PASSWORD,
        "database": "test",
    },
    "mariadb_wrong_user_uri": {
        "database_uri": f"mysql+aiomysql://dsg_no_such_user:{quote(PASSWORD, safe='')}@127.0.0.1:3306/test",
    },
}


def _check_error(err: BaseException, where: str) -> None:
    assert isinstance(err, DatabaseError), f"{where}: raw {type(err).__name__}"
    texts = {
        "str": str(err),
        "repr": repr(err),
        "to_dict": repr(err.to_dict()),
        "details": err.details,
        "chain": "".join(traceback.format_exception(err)),
    }
    for kind, shown in texts.items():
        assert not _leaks(shown), f"{where}: password in {kind}: {shown[:500]}"


@pytest.mark.parametrize("case", sorted(CASES))
async def test_password_never_leaks(case: str, captured_logs: list[str]) -> None:
    await require("postgresql" if case.startswith("pg") else "mariadb")
    config: dict[str, Any] = {**CASES[case], "connect_timeout": 2, "pool_timeout": 2}
    cfg = DBConfig(config)
    db = AsyncDatabase(cfg)
    ops = DatabaseOperations(db)
    try:
        surfaces = {
            "repr(DBConfig)": repr(cfg),
            "str(DBConfig)": str(cfg),
            "DBConfig.config": repr(cfg.config),
            "safe_url": cfg.safe_url,
            "str(url)": str(cfg.url),
            "repr(url)": repr(cfg.url),
            "repr(AsyncDatabase)": repr(db),
            "str(AsyncDatabase)": str(db),
            "str(engine.url)": str(db.engine.url),
            "repr(engine)": repr(db.engine),
            "repr(pool)": repr(db.engine.pool),
        }
        for where, shown in surfaces.items():
            assert not _leaks(shown), f"password in {where}: {shown}"

        with pytest.raises(DatabaseUnavailableError) as info:
            await db.connect(timeout=1.5)
        _check_error(info.value, "connect()")

        with_session_error: BaseException | None = None
        try:
            async with db.get_db_session() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:
            with_session_error = exc
        assert with_session_error is not None
        _check_error(with_session_error, "get_db_session()")

        for name, call in (
            ("read_query", lambda: ops.read_query(select(literal(1)))),
            ("execute_one", lambda: ops.execute_one(text("SELECT 1"))),
            ("transaction", lambda: _in_transaction(db)),
        ):
            try:
                await call()
            except Exception as exc:
                _check_error(exc, name)
            else:
                pytest.fail(f"{name} succeeded against a bad server/credentials")

        health = await db.health_check(timeout=3)
        assert health["ok"] is False
        assert not _leaks(repr(health)), health
    finally:
        await db.disconnect()

    logs = "\n".join(captured_logs)
    assert captured_logs, "no log output captured: the TRACE sink saw nothing"
    assert not _leaks(logs), f"password in logs: {[line for line in captured_logs if _leaks(line)][:3]}"


async def _in_transaction(db: AsyncDatabase) -> None:
    async with db.transaction() as session:
        await session.execute(text("SELECT 1"))
