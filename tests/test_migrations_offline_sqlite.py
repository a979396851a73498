"""Offline (``--sql``) SQLite scripts: what they can write, and the error that names what they cannot.

SQLite alters a table by rebuilding it (Alembic's batch mode). Offline, Alembic
can rebuild a table only from a definition given in the revision
(``batch_alter_table(..., copy_from=Table(...))``); without one it needs a live
database to read the table from. A batch block of ``add_column`` /
``create_index`` / ``drop_index`` only needs no rebuild and works offline.
"""

from __future__ import annotations

import re
import sqlite3
import textwrap
from pathlib import Path

import pytest

from tests.helpers import backend_url
from tests.test_migrations import ENV_PY, V1_EXTRA, V2_EXTRA, Project

pytest.importorskip("alembic", reason="the migrations extra (Alembic) is not installed")


def _project(tmp_path: Path) -> Project:
    proj = Project(tmp_path / "proj", backend_url("sqlite_file", tmp_path), "sqlite_file")
    proj.path.mkdir()
    proj.init(ENV_PY)
    return proj


def _revision_id(source: str) -> str:
    found = re.search(r"^revision: str = '([0-9a-f]+)'", source, re.MULTILINE)
    assert found, source
    return found.group(1)


def _run_script(path: Path, script: str) -> None:
    """Run an offline script as a DBA would, with the sqlite3 module (one statement per ``;``)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.executescript(script)
    finally:
        conn.close()


def _columns(path: Path, table: str) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def test_the_error_names_the_revision_the_table_and_both_fixes(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    proj.write_models(V1_EXTRA)
    first = _revision_id(proj.revision("v1"))
    proj.alembic("upgrade", "head")  # autogenerate compares with a database at the head
    proj.write_models(V2_EXTRA)  # drops "legacy": a table rebuild
    second = _revision_id(proj.revision("v2"))
    done = proj.alembic("upgrade", "base:head", "--sql", check=False)
    assert done.returncode != 0
    assert "ConfigurationError" in done.stderr, done.stderr
    assert f'revision {second} rebuilds table "{proj.parent}"' in done.stderr, done.stderr
    assert f"alembic upgrade {second}" in done.stderr  # fix 1: run it online
    assert f'batch_alter_table("{proj.parent}", copy_from=Table(...))' in done.stderr  # fix 2
    assert f"<start>:{first} --sql" in done.stderr  # the complete script it can write
    assert "COMMIT" not in done.stdout  # the partial script commits nothing
    whole = proj.alembic("upgrade", f"base:{first}", "--sql")  # as the error says: complete up to v1
    assert whole.stdout.rstrip().endswith("COMMIT;")


def test_batch_blocks_that_only_add_columns_and_indexes_work_offline(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    proj.write_models(V1_EXTRA)
    proj.revision("v1")
    proj.alembic("upgrade", "head")
    proj.write_models(
        V1_EXTRA + "\n    rank: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)"
    )
    source = proj.revision("v2")
    assert "batch_alter_table" in source and "add_column" in source and "create_index" in source
    done = proj.alembic("upgrade", "base:head", "--sql")
    assert f"ALTER TABLE {proj.parent} ADD COLUMN rank INTEGER" in done.stdout
    assert done.stdout.rstrip().endswith("COMMIT;")
    database = tmp_path / "from_script.db"
    _run_script(database, done.stdout)
    assert "rank" in _columns(database, proj.parent)


REBUILD_WITH_COPY_FROM = '''\
"""rebuild t offline"""
import sqlalchemy as sa
from alembic import op

revision = "b2b2b2b2b2b2"
down_revision = "a1a1a1a1a1a1"
branch_labels = None
depends_on = None

# the table as it is before this revision: what a live database would have told Alembic
T_BEFORE = sa.Table(
    "t",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False),
    sa.Column("legacy", sa.String(20)),
)


def upgrade():
    with op.batch_alter_table("t", copy_from=T_BEFORE) as batch_op:
        batch_op.drop_column("legacy")
        batch_op.add_column(sa.Column("rank", sa.Integer))


def downgrade():
    pass
'''

CREATE_T = '''\
"""create t"""
import sqlalchemy as sa
from alembic import op

revision = "a1a1a1a1a1a1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "t",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("legacy", sa.String(20)),
    )


def downgrade():
    op.drop_table("t")
'''


def test_a_rebuild_with_copy_from_works_offline_and_keeps_the_rows(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    proj.write_models(V1_EXTRA)
    versions = proj.path / "migrations" / "versions"
    (versions / "a1a1a1a1a1a1_create_t.py").write_text(textwrap.dedent(CREATE_T))
    (versions / "b2b2b2b2b2b2_rebuild_t.py").write_text(textwrap.dedent(REBUILD_WITH_COPY_FROM))
    database = tmp_path / "dba.db"
    _run_script(database, proj.alembic("upgrade", "base:a1a1a1a1a1a1", "--sql").stdout)
    conn = sqlite3.connect(database)
    conn.executemany("INSERT INTO t (id, name, legacy) VALUES (?, ?, ?)", [(1, "a", "x"), (2, "b", None)])
    conn.commit()
    conn.close()
    rebuild = proj.alembic("upgrade", "a1a1a1a1a1a1:b2b2b2b2b2b2", "--sql")
    assert "_alembic_tmp_t" in rebuild.stdout and rebuild.stdout.rstrip().endswith("COMMIT;")
    _run_script(database, rebuild.stdout)
    assert _columns(database, "t") == ["id", "name", "rank"]
    conn = sqlite3.connect(database)
    try:
        assert conn.execute("SELECT id, name FROM t ORDER BY id").fetchall() == [(1, "a"), (2, "b")]
        assert conn.execute(f"SELECT version_num FROM {proj.version_table}").fetchall() == [("b2b2b2b2b2b2",)]
    finally:
        conn.close()
