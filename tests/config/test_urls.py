"""``DBConfig.async_url()`` / ``sync_url()``: masked by default, unmasked on request, and usable."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from dsg_lib import DBConfig
from tests.helpers import BACKENDS, backend_url, require_backend


@pytest.mark.parametrize(
    "uri, async_url, sync_url",
    [
        (
            "postgresql://u:p%40ss@h:5433/db",
            "postgresql+asyncpg://u:p%40ss@h:5433/db",
            "postgresql+psycopg://u:p%40ss@h:5433/db",
        ),
        ("mysql+asyncmy://u:pw@h/db", "mysql+asyncmy://u:pw@h/db", "mysql+pymysql://u:pw@h/db"),
        ("mariadb://u:pw@h/db", "mariadb+aiomysql://u:pw@h/db", "mariadb+pymysql://u:pw@h/db"),
        ("sqlite:///app.db", "sqlite+aiosqlite:///app.db", "sqlite+pysqlite:///app.db"),
    ],
)
def test_urls_unmasked_only_on_request(uri: str, async_url: str, sync_url: str) -> None:
    cfg = DBConfig({"database_uri": uri})
    assert cfg.async_url(hide_password=False) == async_url
    assert cfg.sync_url(hide_password=False) == sync_url
    for masked in (cfg.async_url(), cfg.sync_url(), str(cfg.url), repr(cfg)):
        assert "pw" not in masked.replace("pymysql", "") and "p%40ss" not in masked


def test_url_from_parts_keeps_the_password_only_when_asked() -> None:
    cfg = DBConfig(
        {"dialect": "postgresql", "host": "db", "username": "app", "password": "s3cret", "database": "app"}
    )
    assert cfg.async_url() == "postgresql+asyncpg://app:***@db/app"
    assert cfg.sync_url(hide_password=False, driver="psycopg2") == "postgresql+psycopg2://app:s3cret@db/app"


@pytest.mark.parametrize("backend", [b for b in ("sqlite_file", "mariadb") if b in BACKENDS])
def test_sync_url_connects_with_a_sync_driver(backend: str, tmp_path: Path) -> None:
    """The sync URL reaches the same database as the async engine (psycopg is not installed here)."""
    require_backend(backend)
    cfg = DBConfig({"database_uri": backend_url(backend, tmp_path)})
    engine = create_engine(cfg.sync_url(hide_password=False))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            assert conn.dialect.driver in ("pysqlite", "pymysql")
    finally:
        engine.dispose()
