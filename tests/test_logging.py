"""Logging defaults: no sink of the library's own, per-operation lines at DEBUG, quiet examples."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from loguru import logger
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig
from tests.helpers import ROOT

MEMORY = "sqlite+aiosqlite:///:memory:"


def _python(code_or_path: str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    args = [code_or_path] if code_or_path.endswith(".py") else ["-c", code_or_path]
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LOG_LEVEL")}
    environ.update(PYTHONPATH=str(ROOT), **(env or {}))  # this checkout's dsg_lib
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_in_memory_sqlite_is_logged_as_written(log_messages: list[str]) -> None:
    DBConfig({"database_uri": MEMORY})
    assert f"dsg_lib: engine configured for {MEMORY}\n" in log_messages
    assert not any("%3A" in m for m in log_messages)


async def test_operations_log_at_debug_and_lifecycle_at_info(log_messages: list[str]) -> None:
    info: list[str] = []
    sink = logger.add(info.append, level="INFO", format="{message}", filter="dsg_lib")
    db = AsyncDatabase(DBConfig({"database_uri": MEMORY}))

    class Pet(db.Base):
        __tablename__ = "log_pets"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(20))

    try:
        async with db:
            await db.create_tables()
            await DatabaseOperations(db).insert_many(Pet, [{"name": "Rex"}, {"name": "Tom"}])
    finally:
        logger.remove(sink)
    assert "dsg_lib: insert_many inserted 2 rows into log_pets\n" in log_messages  # DEBUG
    assert not any("insert_many" in m for m in info)  # never reaches an INFO sink
    assert "dsg_lib: created tables ['log_pets']\n" in info


def test_the_library_adds_no_sink_of_its_own() -> None:
    code = (
        "from loguru import logger; logger.remove()\n"
        "from dsg_lib import DBConfig; DBConfig({'database_uri': 'sqlite+aiosqlite:///:memory:'})\n"
        "print('done')"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("done\n", "")


def test_quickstart_is_quiet_unless_asked() -> None:
    quiet = _python(str(ROOT / "examples" / "quickstart.py"))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert quiet.stdout.splitlines()[0] == "3 users in sqlite:"
    loud = _python(str(ROOT / "examples" / "quickstart.py"), env={"LOG_LEVEL": "DEBUG"})
    assert loud.stdout == quiet.stdout
    assert f"dsg_lib: connected to {MEMORY}" in loud.stderr
    assert "insert_many inserted 3 rows" in loud.stderr


def _readme_usage() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    usage = text.split("## Usage", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    return usage.replace("sqlite+aiosqlite:///app.db", MEMORY)


def test_the_readme_usage_prints_only_its_results() -> None:
    result = _python(_readme_usage())
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[-1] == "['ada@example.com']"


def test_the_application_or_the_config_key_turns_logging_on() -> None:
    enabled = "from loguru import logger\nlogger.enable('dsg_lib')\n\ndb = AsyncDatabase("
    by_app = _python(_readme_usage().replace("\ndb = AsyncDatabase(", enabled, 1))
    assert "dsg_lib: engine configured for" in by_app.stderr
    usage = _readme_usage().replace('"slow_query_ms": 200', '"slow_query_ms": 200, "log_enabled": True')
    by_key = _python(usage)
    assert "dsg_lib: connected to" in by_key.stderr, by_key.stderr


def test_the_devsetgo_lib_face_logs_as_devsetgo_lib_does(tmp_path: Path) -> None:
    face = _python(
        "from dsg_lib.async_database_functions import database_config\n"
        f"database_config.DBConfig({{'database_uri': '{MEMORY}'}})\n"
    )
    assert f"dsg_lib: engine configured for {MEMORY}" in face.stderr
    code = (
        "from dsg_lib import DBConfig\n"
        "from dsg_lib.common_functions.logging_config import config_log\n"
        f"path = config_log(logging_directory={str(tmp_path)!r}, enqueue=False, logging_level='DEBUG')\n"
        f"DBConfig({{'database_uri': '{MEMORY}'}})\n"
        "print(path.read_text())\n"
    )
    logged = _python(code)
    assert logged.returncode == 0, logged.stderr
    assert "dsg_lib: engine configured for" in logged.stdout
