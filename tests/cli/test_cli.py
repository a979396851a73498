"""``python -m dsg_lib`` run as a subprocess, the way users run it, on every backend."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import inspect

from dsg_lib import DBConfig
from tests.helpers import BACKENDS, ROOT, backend_url, require_backend

CLI_BACKENDS = [b for b in ("sqlite_file", "postgresql", "mariadb") if b in BACKENDS]
LOG_LINE = re.compile(r"\| (DEBUG|INFO|WARNING) +\|")

MODELS = """\
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dsg_lib.schema import SchemaBaseSQLite


class Base(DeclarativeBase):
    pass


class Owner(SchemaBaseSQLite, Base):
    __tablename__ = "{owner}"
    name: Mapped[str] = mapped_column(String(50))


class Pet(SchemaBaseSQLite, Base):
    __tablename__ = "{pet}"
    owner_id: Mapped[str] = mapped_column(ForeignKey("{owner}.pkid", ondelete="CASCADE"))
"""


def cli(
    *args: str, cwd: Path = ROOT, stdin: int | None = subprocess.DEVNULL, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "dsg_lib", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _tables(url: str) -> set[str]:
    cfg = DBConfig({"database_uri": url})
    try:
        async with cfg.engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await cfg.dispose()


def tables(url: str) -> set[str]:
    # a private loop, not asyncio.run(): that unsets the thread's event loop, which older
    # pytest-asyncio releases then fail to find for the next session-scoped async test
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_tables(url))
    finally:
        loop.close()


@pytest.fixture(params=CLI_BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    require_backend(request.param)
    found = backend_url(request.param, tmp_path)
    if request.param == "sqlite_file":
        tables(found)  # an existing database, as dsg_lib leaves it (WAL): check never creates one
    return found


@pytest.fixture
def models(tmp_path: Path, url: str) -> tuple[Path, str, str]:
    """A ``models.py`` in a fresh directory; its tables are dropped afterwards."""
    suffix = uuid.uuid4().hex[:8]
    owner, pet = f"cli_owner_{suffix}", f"cli_pet_{suffix}"
    project = tmp_path / "app"
    project.mkdir()
    (project / "models.py").write_text(MODELS.format(owner=owner, pet=pet))
    yield project, owner, pet
    cli("drop-tables", "models:Base", "--url", url, "--yes", cwd=project)


def test_help_reads_well() -> None:
    done = cli("--help")
    assert done.returncode == 0
    for part in ("check", "create-tables", "drop-tables", "examples:", "exit codes:", "DATABASE_URL"):
        assert part in done.stdout
    sub = cli("drop-tables", "--help")
    assert sub.returncode == 0 and "--yes" in sub.stdout and "MODULE:ATTR" in sub.stdout


def test_check_reports_server_and_settings_quietly(url: str) -> None:
    done = cli("check", url)
    assert done.returncode == 0, done.stderr
    dialect = DBConfig({"database_uri": url}).dialect
    assert f"dialect:   {dialect}" in done.stdout
    assert re.search(r"server:    .*\d+\.\d+", done.stdout), done.stdout
    assert "pool_size=5" in done.stdout
    expected = {"sqlite": "journal_mode", "postgresql": "max_connections", "mysql": "wait_timeout"}[dialect]
    assert expected in done.stdout
    assert "warnings:  none" in done.stdout
    assert not LOG_LINE.search(done.stdout + done.stderr)  # no loguru lines unless --verbose


def test_check_reads_database_url_and_verbose_shows_logs(url: str) -> None:
    done = cli("--verbose", "check", env={"DATABASE_URL": url})
    assert done.returncode == 0, done.stderr
    assert LOG_LINE.search(done.stderr) and "dsg_lib: engine configured" in done.stderr


def test_check_warns_about_settings(url: str) -> None:
    dialect = DBConfig({"database_uri": url}).dialect
    if dialect == "sqlite":
        done = cli("check", "sqlite://")
        assert "in-memory database" in done.stdout
        return
    if dialect == "postgresql":
        done = cli("check", url, "-o", "pool_size=500")
        assert re.search(r"pool_size \+ max_overflow = 510 exceeds the \d+ connections", done.stdout)
    else:
        wait = int(re.search(r"wait_timeout +(\d+)", cli("check", url).stdout).group(1))  # type: ignore[union-attr]
        done = cli("check", url, "-o", f"pool_recycle={wait + 1}")
        assert f"wait_timeout ({wait}s) is not above pool_recycle ({wait + 1}s)" in done.stdout
    assert done.returncode == 0


def test_check_masks_the_password() -> None:
    if "postgresql" in CLI_BACKENDS:
        require_backend("postgresql")
        from tests.helpers import POSTGRES_URL

        secret_url = POSTGRES_URL.replace("postgres@", "postgres:Top5ecret@", 1)
        done = cli("check", secret_url)
        assert done.returncode == 0, done.stderr
        assert "postgres:***@" in done.stdout
        assert "Top5ecret" not in done.stdout + done.stderr
    unreachable = cli("check", "postgresql://app:Top5ecret@127.0.0.1:1/app", "-o", "connect_timeout=2")
    assert unreachable.returncode == 1
    assert "Top5ecret" not in unreachable.stdout + unreachable.stderr
    assert unreachable.stderr.startswith("error: DatabaseUnavailableError: ")
    assert unreachable.stderr.count("\n") == 1  # one line, no traceback


def test_create_and_drop_tables(url: str, models: tuple[Path, str, str]) -> None:
    project, owner, pet = models
    created = cli("create-tables", "models:Base", "--url", url, cwd=project)
    assert created.returncode == 0, created.stderr
    assert f"created 2 table(s): {owner}, {pet}" in created.stdout
    assert {owner, pet} <= tables(url)
    again = cli("create-tables", "models:Base", env={"DATABASE_URL": url}, cwd=project)
    assert again.returncode == 0 and "created 0 table(s)" in again.stdout
    assert f"already there: {owner}, {pet}" in again.stdout

    refused = cli("drop-tables", "models:Base", "--url", url, cwd=project)  # stdin is not a terminal
    assert refused.returncode == 2
    assert "pass --yes" in refused.stderr
    assert {owner, pet} <= tables(url)

    dropped = cli("drop-tables", "models:Base", "--url", url, "--yes", cwd=project)
    assert dropped.returncode == 0, dropped.stderr
    assert "dropped 2 table(s)" in dropped.stdout
    assert not {owner, pet} & tables(url)


@pytest.mark.parametrize("answer, code", [("n\n", 1), ("\x04", 1), ("yes\n", 0)])  # \x04: Ctrl-D
def test_drop_tables_asks_on_a_terminal(tmp_path: Path, answer: str, code: int) -> None:
    url = backend_url("sqlite_file", tmp_path)
    (tmp_path / "models.py").write_text(MODELS.format(owner="owner", pet="pet"))
    assert cli("create-tables", "models:Base", "--url", url, cwd=tmp_path).returncode == 0
    controller, terminal = os.openpty()
    try:
        os.write(controller, answer.encode())
        done = cli("drop-tables", "models:Base", "--url", url, cwd=tmp_path, stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)
    assert done.returncode == code, done.stdout + done.stderr
    assert "Drop 2 table(s) (owner, pet)" in done.stdout
    assert tables(url) == (set() if code == 0 else {"owner", "pet"})


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["check"], 2, "error: no database URL: pass one or set DATABASE_URL"),
        (["create-tables", "models", "--url", "sqlite://"], 2, "expected MODULE:ATTR"),
        (["create-tables", "no_such_module:Base", "--url", "sqlite://"], 1, "ModuleNotFoundError"),
        (["check", "sqlite://", "-o", "pool_sise=3"], 1, "error: ConfigurationError: "),
        (["check", "sqlite://", "-o", "novalue"], 2, "expected -o KEY=VALUE"),
        (["frobnicate"], 2, "invalid choice"),
    ],
)
def test_errors_are_one_line_with_exit_codes(args: list[str], code: int, message: str) -> None:
    done = cli(*args)
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    if code == 1:
        assert done.stderr.count("\n") == 1


def test_debug_shows_the_traceback() -> None:
    done = cli("--debug", "check", "sqlite://", "-o", "pool_sise=3")
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ConfigurationError" in done.stderr


def test_console_script_points_at_main() -> None:
    entry = re.search(r'^dsg-lib = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert entry is not None, "no dsg-lib entry in [project.scripts]"
    module, _, attr = entry.group(1).partition(":")
    from importlib import import_module

    main = getattr(import_module(module), attr)
    assert main(["--help"]) == 0


# --------------------------------------------------------------------------- #
# check: a SQLite file is read, never created or changed; pipes; dialect list   #
# --------------------------------------------------------------------------- #


def test_check_never_creates_a_sqlite_file_and_explains_the_slashes(tmp_path: Path) -> None:
    done = cli("check", "sqlite:///data/typo.db", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert list(tmp_path.iterdir()) == []  # no file, no folder
    assert "relative to the current directory" in done.stderr
    assert str(tmp_path / "data" / "typo.db") in done.stderr
    assert "sqlite:////srv/app.db" in done.stderr and "four slashes" in done.stderr
    absolute = cli("check", f"sqlite:///{tmp_path}/typo.db", cwd=tmp_path)
    assert absolute.returncode == 1 and "absolute path" in absolute.stderr
    assert list(tmp_path.iterdir()) == []


def test_check_opens_an_existing_sqlite_file_read_only(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    before = path.read_bytes()
    done = cli("check", "sqlite:///app.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "mode=ro" in done.stdout
    assert re.search(r"journal_mode +delete", done.stdout), done.stdout  # not switched to WAL
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_check_piped_into_a_reader_that_stops_early_is_not_an_error() -> None:
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    read_fd, write_fd = os.pipe()
    os.close(read_fd)  # `| head -0`: nobody reads what check prints
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dsg_lib", "check", "sqlite://"],
            cwd=ROOT,
            env=base,
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_fd)
    assert (done.returncode, done.stderr) == (0, "")


def test_unknown_dialect_lists_only_the_supported_ones() -> None:
    done = cli("check", "foo://bar")
    assert done.returncode == 1
    assert "supported: mariadb, mysql, postgresql, sqlite" in done.stderr
    for unsupported in ("oracle", "mssql", "cockroachdb"):
        assert unsupported not in done.stderr


def test_debug_traceback_starts_with_the_real_error() -> None:
    done = cli("--debug", "check", "postgresql://app:pw@127.0.0.1:1/app", "-o", "connect_timeout=1")
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert "no running event loop" not in done.stderr
