"""dsg_lib.testing: per-test rollback on every backend, and the pytest fixtures in a real run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, InvalidInputError
from dsg_lib.testing import isolated
from tests.helpers import ROOT


async def test_isolated_rolls_back_committed_transactions(db: AsyncDatabase) -> None:
    class Thing(db.Base):
        __tablename__ = "testing_things"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(20), unique=True)

    await db.drop_tables()
    await db.create_tables()
    ops = DatabaseOperations(db)
    await ops.insert_many(Thing, [{"name": "kept"}])

    async with isolated(db):
        async with db.transaction():
            await ops.insert_many(Thing, [{"name": "a"}, {"name": "b"}])
        assert await ops.count(Thing) == 3  # visible inside the test
        with pytest.raises(RuntimeError):  # a failing nested transaction only undoes itself
            async with db.transaction():
                await ops.insert_many(Thing, [{"name": "c"}])
                raise RuntimeError("undo c")
        assert await ops.count(Thing) == 3
        with pytest.raises(InvalidInputError):
            async with isolated(db):
                pass

    assert [t.name for t in await ops.find(Thing)] == ["kept"]
    assert db.pool_status()["checked_out"] == 0


def test_database_fixtures_in_a_users_test_suite(tmp_path: Path, db_url: str) -> None:
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            f"""
            from sqlalchemy import String
            from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
            from dsg_lib.testing import database_fixtures

            class Base(DeclarativeBase):
                pass

            class Note(Base):
                __tablename__ = "user_suite_notes"
                id: Mapped[int] = mapped_column(primary_key=True)
                text: Mapped[str] = mapped_column(String(50))

            pytest_plugins = ["dsg_lib.testing"]
            db_session, db = database_fixtures({db_url!r}, base=Base, name="db")
            """
        )
    )
    (tmp_path / "test_notes.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from dsg_lib import DatabaseOperations
            from conftest import Note

            @pytest.mark.parametrize("run", range(3))
            async def test_each_test_starts_empty(db, run):
                ops = DatabaseOperations(db)
                assert await ops.count(Note) == 0
                async with db.transaction():
                    await ops.insert_many(Note, [{"text": f"run {run}"}])
                assert await ops.count(Note) == 1
            """
        )
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            str(tmp_path),
        ],
        cwd=tmp_path,
        # this checkout's dsg_lib, not the one installed in the environment
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
