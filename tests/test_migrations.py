"""The real ``alembic`` command on a project whose env.py is three lines of dsg_lib.

Each backend: ``alembic init``, autogenerate the first revision of models using the
``pkid``/timestamp mixins and a cascading foreign key, upgrade, insert rows,
change the parent table (drop a column, add one: a table rebuild on SQLite),
autogenerate and upgrade again, check that nothing is left to autogenerate,
downgrade, and count the rows at every step: none may be lost.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import text

from dsg_lib import AsyncDatabase, DBConfig
from tests.helpers import BACKENDS, ROOT, backend_url, require_backend, unused_port

pytest.importorskip("alembic", reason="the migrations extra (Alembic) is not installed")

MIGRATION_BACKENDS = [b for b in ("sqlite_file", "postgresql", "mariadb") if b in BACKENDS]
MIXINS = {"sqlite_file": "SchemaBaseSQLite", "postgresql": "SchemaBasePostgres", "mariadb": "SchemaBaseMySQL"}

ENV_PY = """\
import os

from dsg_lib import DBConfig
from dsg_lib.migrations import run_migrations

from models import Base

run_migrations(
    DBConfig.from_env("DATABASE_URL"),
    target_metadata=Base.metadata,
    version_table=os.environ["VERSION_TABLE"],
)
"""

MODELS = """\
from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dsg_lib.schema import {mixin} as Mixin


class Base(DeclarativeBase):
    pass


class Parent(Mixin, Base):
    __tablename__ = "{parent}"
    name: Mapped[str] = mapped_column(String(50))
    {extra}


class Child(Mixin, Base):
    __tablename__ = "{child}"
    parent_id: Mapped[str] = mapped_column(ForeignKey("{parent}.pkid", ondelete="CASCADE"), index=True)
    note: Mapped[str] = mapped_column(String(50))
"""
ENV_PY_DATABASE = """\
import os

from dsg_lib import AsyncDatabase, DBConfig
from dsg_lib.migrations import run_migrations

from models import Base

db = AsyncDatabase(DBConfig.from_env("DATABASE_URL"), base=Base)
run_migrations(db, version_table=os.environ["VERSION_TABLE"])
"""

V1_EXTRA = "legacy: Mapped[str | None] = mapped_column(String(20), nullable=True)"
V2_EXTRA = "rank: Mapped[int | None] = mapped_column(Integer, nullable=True)"


class Project:
    """A throw-away Alembic project in ``path`` migrating ``url``."""

    def __init__(self, path: Path, url: str, backend: str) -> None:
        self.path, self.url, self.backend = path, url, backend
        suffix = uuid.uuid4().hex[:8]
        self.parent, self.child = f"mig_parent_{suffix}", f"mig_child_{suffix}"
        self.version_table = f"alembic_version_{suffix}"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "DATABASE_URL": url,
            "VERSION_TABLE": self.version_table,
        }

    def alembic(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "alembic", *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            pytest.fail(f"alembic {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def init(self, env_py: str) -> None:
        """``alembic init migrations``, then ``env_py`` as its ``env.py``."""
        self.alembic("init", "migrations")
        (self.path / "migrations" / "env.py").write_text(env_py)

    def write_models(self, extra: str) -> ModuleType:
        source = MODELS.format(mixin=MIXINS[self.backend], parent=self.parent, child=self.child, extra=extra)
        (self.path / "models.py").write_text(source)
        for cached in (self.path / "__pycache__").glob("models.*"):
            cached.unlink()
        spec = importlib.util.spec_from_file_location(f"models_{uuid.uuid4().hex}", self.path / "models.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def revision(self, message: str) -> str:
        self.alembic("revision", "--autogenerate", "-m", message)
        (path,) = [p for p in (self.path / "migrations" / "versions").glob(f"*_{message}.py")]
        return path.read_text()


async def _run(url: str, statements: list[str]) -> list[Any]:
    db = AsyncDatabase(DBConfig({"database_uri": url}))
    results: list[Any] = []
    try:
        async with db.engine.begin() as conn:
            for statement in statements:
                result = await conn.execute(text(statement))
                results.append(result.scalar() if result.returns_rows else None)
    finally:
        await db.disconnect()
    return results


def counts(project: Project) -> tuple[int, int]:
    parents, children = asyncio.run(
        _run(project.url, [f"SELECT count(*) FROM {project.parent}", f"SELECT count(*) FROM {project.child}"])
    )
    return int(parents), int(children)


async def _seed(url: str, models: ModuleType) -> None:
    db = AsyncDatabase(DBConfig({"database_uri": url}), base=models.Base)
    try:
        async with db.transaction() as session:
            parents = [models.Parent(name="a", legacy="x"), models.Parent(name="b")]
            session.add_all(parents)
            await session.flush()
            session.add_all(
                [
                    models.Child(parent_id=parents[0].pkid, note="1"),
                    models.Child(parent_id=parents[0].pkid, note="2"),
                    models.Child(parent_id=parents[1].pkid, note="3"),
                ]
            )
    finally:
        await db.disconnect()


@pytest.fixture(params=MIGRATION_BACKENDS)
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    backend = request.param
    require_backend(backend)
    url = backend_url(backend, tmp_path)
    proj = Project(tmp_path / "proj", url, backend)
    proj.path.mkdir()
    yield proj
    asyncio.run(
        _run(
            url,
            [
                f"DROP TABLE IF EXISTS {proj.child}",
                f"DROP TABLE IF EXISTS {proj.parent}",
                f"DROP TABLE IF EXISTS {proj.version_table}",
            ],
        )
    )


def test_alembic_round_trip_loses_no_rows(project: Project) -> None:
    project.init(ENV_PY)
    project.write_models(V1_EXTRA)

    first = project.revision("v1")
    assert "import dsg_lib.schema" in first
    assert "dsg_lib.schema.UTCDateTime()" in first
    assert "ondelete='CASCADE'" in first
    project.alembic("upgrade", "head")
    models = project.write_models(V1_EXTRA)
    asyncio.run(_seed(project.url, models))
    assert counts(project) == (2, 3)

    project.write_models(V2_EXTRA)
    second = project.revision("v2")
    upgrade = second.split("def downgrade")[0]
    assert "drop_column(" in upgrade and "'legacy'" in upgrade and "'rank'" in upgrade
    if project.backend == "sqlite_file":
        assert "batch_alter_table" in second  # SQLite rebuilds the parent table
    project.alembic("upgrade", "head")
    assert counts(project) == (2, 3)  # the rebuild cascaded nothing

    check = project.alembic("check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr

    project.alembic("downgrade", "-1")
    assert counts(project) == (2, 3)
    project.alembic("downgrade", "base")
    tables = asyncio.run(_tables(project.url))
    assert project.parent not in tables and project.child not in tables


async def _tables(url: str) -> set[str]:
    from sqlalchemy import inspect

    db = AsyncDatabase(DBConfig({"database_uri": url}))
    try:
        async with db.engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await db.disconnect()


def test_offline_sql_switches_sqlite_foreign_keys_off_before_begin(project: Project) -> None:
    """Also: given an AsyncDatabase, run_migrations uses its Base.metadata."""
    project.init(ENV_PY_DATABASE)
    project.write_models(V1_EXTRA)
    project.revision("v1")
    script = project.alembic("upgrade", "head", "--sql").stdout
    assert f"CREATE TABLE {project.child}" in script
    assert "ON DELETE CASCADE" in script
    if project.backend == "sqlite_file":
        assert script.index("PRAGMA foreign_keys=OFF") < script.index("BEGIN")
        assert "PRAGMA foreign_key_check" in script
    assert project.parent not in asyncio.run(_tables(project.url))  # offline never touches the database


@pytest.mark.parametrize("backend", ["sqlite_file"])
def test_migration_leaving_orphans_rolls_back(backend: str, tmp_path: Path) -> None:
    """With foreign keys off, a migration could orphan rows; the run fails and commits nothing."""
    proj = Project(tmp_path / "proj", backend_url(backend, tmp_path), backend)
    proj.path.mkdir()
    proj.init(ENV_PY)
    proj.write_models(V1_EXTRA)
    proj.revision("v1")
    proj.alembic("upgrade", "head")
    asyncio.run(_seed(proj.url, proj.write_models(V1_EXTRA)))
    revision = textwrap.dedent(
        f"""\
        revision = "orphans"
        down_revision = {_head(proj)!r}
        branch_labels = None
        depends_on = None

        from alembic import op


        def upgrade():
            op.execute("DELETE FROM {proj.parent} WHERE name = 'a'")


        def downgrade():
            pass
        """
    )
    (proj.path / "migrations" / "versions" / "orphans.py").write_text(revision)
    failed = proj.alembic("upgrade", "head", check=False)
    assert failed.returncode != 0
    assert "violating foreign keys" in failed.stderr
    assert counts(proj) == (2, 3)  # rolled back
    assert proj.alembic("current").stdout.split()[0] == _head(proj, before="orphans")


def _head(proj: Project, before: str | None = None) -> str:
    heads = proj.alembic("heads").stdout.split()
    if before is None:
        return heads[0]
    history = proj.alembic("history").stdout
    for line in history.splitlines():  # "<down> -> orphans (head), ..."
        if f"-> {before}" in line:
            return line.split("->")[0].strip()
    raise AssertionError(history)


def test_batch_rebuild_on_the_application_engine_cascades(tmp_path: Path) -> None:
    """Why run_migrations uses its own connection: the application engine enforces foreign keys
    inside its own BEGIN, so the same batch rebuild there deletes every child row."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    def rebuild(connection: Any) -> None:
        with Operations(MigrationContext.configure(connection)).batch_alter_table("parent") as batch:
            batch.drop_column("legacy")

    async def run() -> tuple[int, int]:
        db = AsyncDatabase(DBConfig({"database_uri": backend_url("sqlite_file", tmp_path)}))
        try:
            async with db.engine.begin() as conn:
                await conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY, legacy TEXT)")
                await conn.exec_driver_sql(
                    "CREATE TABLE child (id INTEGER PRIMARY KEY, "
                    "parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE)"
                )
                await conn.exec_driver_sql("INSERT INTO parent VALUES (1, 'x')")
                await conn.exec_driver_sql("INSERT INTO child VALUES (1, 1), (2, 1)")
            async with db.engine.connect() as conn:
                before = (await conn.execute(text("SELECT count(*) FROM child"))).scalar_one()
            async with db.engine.begin() as conn:
                await conn.run_sync(rebuild)
            async with db.engine.connect() as conn:
                after = (await conn.execute(text("SELECT count(*) FROM child"))).scalar_one()
            return before, after
        finally:
            await db.disconnect()

    assert asyncio.run(run()) == (2, 0)


INLINE_ENV_PY = """\
from alembic import context
from sqlalchemy import Column, Integer, MetaData, Table

from dsg_lib.migrations import run_migrations

metadata = MetaData()
Table("inline_things", metadata, Column("id", Integer, primary_key=True))

run_migrations(context.config.get_main_option("sqlalchemy.url"), target_metadata=metadata)
"""


async def test_alembic_command_api_from_async_code(tmp_path: Path) -> None:
    """Alembic's command API called under a running event loop (an app's startup hook)."""
    from alembic import command
    from alembic.config import Config

    url = backend_url("sqlite_file", tmp_path)
    ini = tmp_path / "alembic.ini"
    command.init(Config(str(ini)), str(tmp_path / "migrations"))
    (tmp_path / "migrations" / "env.py").write_text(INLINE_ENV_PY)
    config = Config(str(ini))
    config.set_main_option("script_location", str(tmp_path / "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    command.revision(config, message="things", autogenerate=True)
    command.upgrade(config, "head")
    assert "inline_things" in await _tables(url)
    command.downgrade(config, "base")
    assert "inline_things" not in await _tables(url)


@pytest.mark.parametrize("backend", ["sqlite_file"])
def test_offline_sql_on_sqlite_says_where_it_stops(backend: str, tmp_path: Path) -> None:
    """``--sql`` on SQLite: a revision that rebuilds a table (a dropped column) needs a live database.

    The script holds every revision before it, then a clear error names the limit.
    """
    proj = Project(tmp_path / "proj", backend_url(backend, tmp_path), backend)
    proj.path.mkdir()
    proj.init(ENV_PY)
    proj.write_models(V1_EXTRA)
    proj.revision("v1")
    proj.alembic("upgrade", "head")
    proj.write_models(V2_EXTRA)  # drops "legacy", adds "rank"
    proj.revision("v2")
    done = proj.alembic("upgrade", "base:head", "--sql", check=False)
    assert done.returncode != 0
    assert f"CREATE TABLE {proj.parent}" in done.stdout  # v1 is written
    assert "ConfigurationError" in done.stderr and "run that revision online" in done.stderr, done.stderr
    assert proj.alembic("upgrade", "head").returncode == 0  # online it works


@pytest.mark.parametrize("backend", [b for b in ("postgresql", "mariadb") if b in BACKENDS])
def test_alembic_on_a_multi_host_uri_with_ports(backend: str, tmp_path: Path) -> None:
    """The documented HA form (``h1:port,h2:port``) works with the documented env.py; a dead
    first host is skipped, as by the application."""

    from sqlalchemy.engine import make_url

    require_backend(backend)
    parsed = make_url(backend_url(backend, tmp_path))
    dead = unused_port()
    port = parsed.port or (5432 if backend == "postgresql" else 3306)
    user = parsed.username or ""
    url = f"{parsed.drivername}://{user}@127.0.0.1:{dead},{parsed.host}:{port}/{parsed.database}"
    proj = Project(tmp_path / "proj", url, backend)
    proj.path.mkdir()
    proj.init(ENV_PY)
    proj.write_models(V1_EXTRA)
    assert proj.alembic("current").returncode == 0
