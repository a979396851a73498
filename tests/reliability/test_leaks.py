"""Values and secrets never leave: unique markers written as values and passwords, searched everywhere.

Every output a user, an operator or an error tracker sees is searched: the
error's ``str``, ``repr`` and ``to_dict()``, the formatted traceback (the
whole printed chain), loguru at DEBUG, stdlib ``logging`` at DEBUG (the
drivers' own loggers included), ``repr(DBConfig)``, ``DBConfig.config`` and
the CLI's output.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger
from sqlalchemy import String, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, ConfigurationError, DatabaseError, DBConfig
from tests.helpers import MYSQL_URL, POSTGRES_URL

from .conftest import require

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]


def marker(kind: str) -> str:
    return f"{kind}{uuid.uuid4().hex[:12]}"


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {self.format(record)}")


@pytest.fixture
def outputs() -> Iterator[list[str]]:
    """Everything logged while the test runs: loguru (DEBUG, with its variable-showing
    tracebacks) and stdlib logging at DEBUG (the drivers' loggers included)."""
    lines: list[str] = []
    sink = logger.add(
        lambda m: lines.append(str(m)),
        level="DEBUG",
        format="{name} {message} {exception}",
        backtrace=True,
        diagnose=True,
    )
    logger.enable("dsg_lib")
    root = logging.getLogger()
    handler, level = _Collect(lines), root.level
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.remove(sink)
        logger.disable("dsg_lib")
        root.removeHandler(handler)
        root.setLevel(level)


def everything(err: BaseException) -> dict[str, str]:
    shown = {
        "str": str(err),
        "repr": repr(err),
        "traceback": "".join(traceback.format_exception(err)),
    }
    if isinstance(err, DatabaseError):
        shown["to_dict"] = repr(err.to_dict())
    return shown


def assert_absent(value: str, err: BaseException | None, logs: list[str], *more: str) -> None:
    surfaces = everything(err) if err is not None else {}
    surfaces["logs"] = "\n".join(logs)
    for index, extra in enumerate(more):
        surfaces[f"extra{index}"] = extra
    for where, shown in surfaces.items():
        assert value not in shown, f"{value!r} leaked in {where}: {shown[:800]}"


# --------------------------------------------------------------------------- #
# values (items 11, 12, 13)                                                    #
# --------------------------------------------------------------------------- #
PG_CASES = {
    "double precision": ("SELECT CAST(CAST(:v AS text) AS double precision)", "{m}"),
    "integer": ("SELECT CAST(CAST(:v AS text) AS integer)", "{m}"),
    "array literal": ("SELECT CAST(CAST(:v AS text) AS integer[])", "{m}"),
    "time zone": ("SELECT now() AT TIME ZONE CAST(:v AS text)", "{m}"),
    "date out of range": ("SELECT CAST(CAST(:v AS text) AS date)", "{y}-02-31"),
    "timestamp with time zone": ("SELECT CAST(CAST(:v AS text) AS timestamp with time zone)", "{m}"),
}
MY_CASES = {
    "1064 syntax near a value": ("SELECT * FROM WHERE x = :v", "{m}"),
    "1298 time zone": ("SET time_zone = :v", "{m}"),
}


async def _failing(url: str, statement: str, value: str) -> BaseException:
    db = AsyncDatabase(DBConfig({"database_uri": url, "connect_timeout": 5}))
    try:
        async with db.transaction() as session:
            await session.execute(text(statement), {"v": value})
    except Exception as exc:
        return exc
    finally:
        await db.disconnect()
    pytest.fail(f"{statement} with {value!r} succeeded")


@pytest.mark.parametrize("case", sorted(PG_CASES))
async def test_postgres_messages_never_carry_values(case: str, outputs: list[str]) -> None:
    await require("postgresql")
    statement, template = PG_CASES[case]
    value = template.format(m=marker("v"), y=1000 + uuid.uuid4().int % 9000)
    err = await _failing(POSTGRES_URL, statement, value)
    assert isinstance(err, DatabaseError), repr(err)
    assert value not in str(err)  # before the fix the value was in the message
    assert_absent(value, err, outputs)
    assert value in str(err.driver_error)  # still reachable for debugging


@pytest.mark.parametrize("case", sorted(MY_CASES))
@pytest.mark.parametrize("driver", ["aiomysql", "asyncmy"])
async def test_mariadb_messages_never_carry_values(case: str, driver: str, outputs: list[str]) -> None:
    await require("mariadb")
    url = make_url(MYSQL_URL).set(drivername=f"mysql+{driver}").render_as_string(hide_password=False)
    statement, template = MY_CASES[case]
    value = template.format(m=marker("v"))
    err = await _failing(url, statement, value)
    assert isinstance(err, DatabaseError), repr(err)
    assert_absent(value, err, outputs)


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
async def test_a_duplicate_value_is_not_in_the_printed_traceback(server: str, outputs: list[str]) -> None:
    await require(server)
    db = AsyncDatabase(DBConfig({"database_uri": POSTGRES_URL if server == "postgresql" else MYSQL_URL}))
    table = f"leak_{uuid.uuid4().hex[:8]}"

    class Person(db.Base):
        __tablename__ = table
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str] = mapped_column(String(80), unique=True)

    value = marker("mail")
    await db.create_tables()
    try:
        async with db.transaction() as session:
            session.add(Person(id=1, email=value))
        with pytest.raises(DatabaseError) as info:
            async with db.transaction() as session:
                session.add(Person(id=2, email=value))
        err = info.value
        assert err.__cause__ is None and err.__suppress_context__
        said = f"{err.driver_error} {getattr(err.driver_error, 'detail', '')}"
        assert value in said  # the driver said it; dsg_lib keeps it off the chain
        logger.opt(exception=err).error("request failed")  # what an app's error handler does
        logging.getLogger("app").error("request failed", exc_info=err)
        assert_absent(value, err, outputs)
    finally:
        await db.drop_tables()
        await db.disconnect()


async def test_sqlite_debug_logging_shows_no_statement_values(tmp_path: Path, outputs: list[str]) -> None:
    db = AsyncDatabase(DBConfig({"database_uri": f"sqlite+aiosqlite:///{tmp_path / 'v.db'}"}))
    value = marker("v")
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE t (v TEXT)"))
            await session.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
    finally:
        await db.disconnect()
    assert any(line.startswith("aiosqlite") for line in outputs), "aiosqlite logged nothing at DEBUG"
    assert_absent(value, None, outputs)


# --------------------------------------------------------------------------- #
# secrets (items 5, 8, 9, 10)                                                  #
# --------------------------------------------------------------------------- #
def _surfaces(cfg: DBConfig) -> list[str]:
    return [repr(cfg), str(cfg), repr(cfg.config), cfg.safe_url, cfg.async_url(), cfg.sync_url()]


def test_config_masks_replicas_cursor_secret_and_connect_args(outputs: list[str]) -> None:
    replica_pw, cursor, arg_pw = marker("rep"), marker("cursor") + "x" * 8, marker("arg")
    cfg = DBConfig(
        {
            "database_uri": "postgresql://app@db-a/shop",
            "read_replicas": [f"postgresql://app:{replica_pw}@db-b/shop"],
            "cursor_secret": cursor,
            "connect_args": {"password": arg_pw},
        }
    )
    for secret in (replica_pw, cursor, arg_pw):
        assert_absent(secret, None, outputs, *_surfaces(cfg))
    assert cfg.config["connect_args"] == {"password": "***"}
    assert cfg.config["cursor_secret"] == "***"


def test_read_replicas_given_as_a_string_is_refused_without_the_password() -> None:
    secret = marker("rep")
    with pytest.raises(ConfigurationError) as info:
        DBConfig(
            {"database_uri": "postgresql://app@db-a/shop", "read_replicas": f"postgresql://u:{secret}@b/s"}
        )
    assert "read_replicas" in str(info.value)
    assert_absent(secret, info.value, [])


def test_password_in_the_query_string_is_masked(outputs: list[str]) -> None:
    secret = marker("q")
    cfg = DBConfig({"database_uri": f"postgresql://app@db-a/shop?password={secret}"})
    assert_absent(secret, None, outputs, *_surfaces(cfg))
    assert "password=***" in cfg.safe_url


def test_a_multi_host_uri_with_ports_has_a_masked_config() -> None:
    secret = marker("pw")
    cfg = DBConfig({"database_uri": f"postgresql://app:{secret}@h1:5432,h2:5432/db"})
    assert cfg.config["database_uri"] == "postgresql://app:***@h1:5432,h2:5432/db"
    assert_absent(secret, None, [], *_surfaces(cfg))


def test_a_comma_in_a_single_host_password_is_not_several_hosts() -> None:
    cfg = DBConfig({"database_uri": "postgresql://app:pa,ss@db-a/shop"})
    assert not cfg.multi_host and cfg.url.password == "pa,ss" and cfg.url.host == "db-a"


def test_an_unencoded_at_sign_in_the_password_is_refused_without_echoing_it() -> None:
    password = "se@" + marker("cret")
    uri = f"postgresql://app:{password}@db-a/shop"
    with pytest.raises(ConfigurationError, match="%40") as info:
        DBConfig({"database_uri": uri})
    for part in (password, password.split("@")[1]):
        assert_absent(part, info.value, [])


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://app:{pw}@127.0.0.1:1,127.0.0.1:2/db",
        "mysql://app:{pw}@127.0.0.1:1,127.0.0.1:2/db",
        "postgresql://app@127.0.0.1:1/db?password={pw}",
    ],
)
def test_cli_check_neither_crashes_nor_shows_the_password(uri: str) -> None:
    secret = marker("pw")
    result = subprocess.run(
        [sys.executable, "-m", "dsg_lib", "--verbose", "check", uri.format(pw=secret)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        stdin=subprocess.DEVNULL,
    )
    shown = result.stdout + result.stderr
    assert "Traceback" not in shown and "invalid literal" not in shown, shown
    assert result.returncode != 0, shown
    assert secret not in shown, shown


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
async def test_http_error_bodies_and_logs_carry_no_value(server: str, outputs: list[str]) -> None:
    import httpx
    from fastapi import FastAPI

    from dsg_lib.fastapi import DBSessionMiddleware, register_exception_handlers

    await require(server)
    db = AsyncDatabase(DBConfig({"database_uri": POSTGRES_URL if server == "postgresql" else MYSQL_URL}))
    statement = PG_CASES["double precision"][0] if server == "postgresql" else MY_CASES["1298 time zone"][0]
    value = marker("v")
    app = FastAPI()
    register_exception_handlers(app)
    app.add_middleware(DBSessionMiddleware, db=db)

    @app.get("/q")
    async def query() -> None:
        await db.current_session().execute(text(statement), {"v": value})

    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/q")
    finally:
        await db.disconnect()
    assert response.status_code in (400, 422, 500), response.text
    assert_absent(value, None, outputs, response.text, repr(dict(response.headers)))
