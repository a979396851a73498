"""SQLite files: concurrent writers, lock waits past busy_timeout, a writer killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dsg_lib import DatabaseOperations, DatabaseUnavailableError

from .conftest import assert_no_leak, close_db, make_db, row_model

pytestmark = [pytest.mark.reliability, pytest.mark.sqlite]

REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from loguru import logger
    from sqlalchemy import Integer, String
    from sqlalchemy.orm import Mapped, mapped_column
    from dsg_lib import AsyncDatabase, DBConfig, DatabaseOperations

    path, table, name, batches, per_batch, hang = sys.argv[1:7]
    logger.disable("dsg_lib")

    async def main():
        db = AsyncDatabase(DBConfig({"database_uri": f"sqlite+aiosqlite:///{path}"}))

        class Row(db.Base):
            __tablename__ = table
            id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
            writer: Mapped[str] = mapped_column(String(20), nullable=False)
            seq: Mapped[int] = mapped_column(Integer, nullable=False)

        ops = DatabaseOperations(db)
        await db.create_tables(Row)
        seq = 0
        for _ in range(int(batches)):
            async with db.transaction():
                for _ in range(int(per_batch)):
                    await ops.insert_many(Row, [{"writer": name, "seq": seq}])
                    seq += 1
        print("committed", seq, flush=True)
        if hang == "hang":
            async with db.transaction():
                await ops.insert_many(Row, ({"writer": name + "-lost", "seq": i} for i in range(200_000)))
                print("uncommitted", flush=True)
                await asyncio.sleep(60)
        await db.disconnect()

    asyncio.run(main())
    """
)


def _spawn(
    path: Path, table: str, name: str, batches: int, per_batch: int, hang: bool
) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # stderr goes to a file: a full pipe would block the child
    with open(path.parent / f"{name}.stderr", "w") as stderr:
        return subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(path),
                table,
                name,
                str(batches),
                str(per_batch),
                "hang" if hang else "no",
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )


def _stderr(path: Path, name: str) -> str:
    return (path.parent / f"{name}.stderr").read_text()[-2000:]


async def test_two_databases_and_a_process_write_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    url = f"sqlite+aiosqlite:///{path}"
    db_a, db_b = make_db(url), make_db(url)
    RowA = row_model(db_a)
    RowB = row_model(db_b, RowA.__tablename__)
    ops_a, ops_b = DatabaseOperations(db_a), DatabaseOperations(db_b)
    try:
        await db_a.create_tables(RowA)
        proc = _spawn(path, RowA.__tablename__, "proc", 40, 5, hang=False)

        async def writer(ops: DatabaseOperations, db: object, model: type, name: str) -> None:
            for seq in range(200):
                if seq % 4 == 0:
                    async with db.transaction():  # type: ignore[attr-defined]
                        await ops.insert_many(model, [{"writer": name, "seq": seq}])
                        await ops.count(model)
                else:
                    await ops.insert_many(model, [{"writer": name, "seq": seq}])
                if seq % 10 == 0:
                    await asyncio.sleep(0)

        await asyncio.gather(
            writer(ops_a, db_a, RowA, "a"),
            writer(ops_b, db_b, RowB, "b"),
            writer(ops_a, db_a, RowA, "a2"),
            writer(ops_b, db_b, RowB, "b2"),
        )
        out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
        assert proc.returncode == 0, _stderr(path, "proc")
        assert "committed 200" in out

        async with db_a.get_db_session() as s:
            per_writer = dict(
                (await s.execute(select(RowA.writer, func.count()).group_by(RowA.writer))).all()
            )
            dupes = (
                await s.execute(
                    select(RowA.writer, RowA.seq).group_by(RowA.writer, RowA.seq).having(func.count() > 1)
                )
            ).all()
        assert per_writer == {"a": 200, "b": 200, "a2": 200, "b2": 200, "proc": 200}
        assert not dupes
        assert_no_leak(db_a)
        assert_no_leak(db_b)
    finally:
        await close_db(db_b)
        await close_db(db_a)


async def test_lock_held_past_busy_timeout_raises_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    db = make_db(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=200)
    Row = row_model(db)
    ops = DatabaseOperations(db)
    try:
        await db.create_tables(Row)
        await ops.insert_many(Row, [{"writer": "x", "seq": i} for i in range(10)])

        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            blocker.execute(f"INSERT INTO {Row.__tablename__} (writer, seq) VALUES ('blocker', 0)")
            for call in (
                lambda: ops.insert_many(Row, [{"writer": "y", "seq": 1}]),
                lambda: ops.update_where(Row, {"seq": 99}, writer="x"),
            ):
                start = time.monotonic()
                with pytest.raises(DatabaseUnavailableError) as info:
                    await asyncio.wait_for(call(), timeout=10)
                elapsed = time.monotonic() - start
                assert 0.15 <= elapsed < 2.0, f"busy_timeout 200 ms, waited {elapsed:.2f}s"
                assert "locked" in str(info.value).lower() or "busy" in str(info.value).lower()
            with pytest.raises(DatabaseUnavailableError):
                async with db.transaction():
                    await ops.count(Row)
            # WAL: readers outside a transaction still work while the writer holds the lock
            assert await ops.count(Row) == 10
            assert_no_leak(db)
        finally:
            blocker.rollback()
            blocker.close()

        await ops.insert_many(Row, [{"writer": "y", "seq": 1}])
        assert await ops.count(Row) == 11
        assert await ops.count(Row, seq=99) == 0
        assert _integrity(path) == "ok"
        assert_no_leak(db)
    finally:
        await close_db(db, Row)


async def test_lock_released_within_busy_timeout_waits_and_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "waits.db"
    db = make_db(f"sqlite+aiosqlite:///{path}", busy_timeout_ms=3000)
    Row = row_model(db)
    ops = DatabaseOperations(db)
    try:
        await db.create_tables(Row)
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(0.5, blocker.commit)
        start = time.monotonic()
        await ops.insert_many(Row, [{"writer": "w", "seq": 1}])
        assert 0.3 < time.monotonic() - start < 3.0
        blocker.close()
        assert await ops.count(Row) == 1
        assert_no_leak(db)
    finally:
        await close_db(db, Row)


async def test_writer_killed_mid_transaction_leaves_a_consistent_file(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    table = "rel_killed_rows"
    proc = _spawn(path, table, "w", 5, 100, hang=True)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "uncommitted" not in lines:
            line = await asyncio.to_thread(proc.stdout.readline)  # type: ignore[union-attr]
            if not line:
                break
            lines.append(line.strip())
        assert "committed 500" in lines and "uncommitted" in lines, (lines, _stderr(path, "w"))
        wal_size = _file_size(Path(f"{path}-wal"))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]

    print(f"\nWAL size when killed: {wal_size} bytes")
    assert _integrity(path) == "ok"
    con = sqlite3.connect(path)
    try:
        assert con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 500
        assert con.execute(f"SELECT COUNT(*) FROM {table} WHERE writer = 'w-lost'").fetchone()[0] == 0
        assert con.execute(f"SELECT COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM {table}").fetchone() == (
            500,
            0,
            499,
        )
    finally:
        con.close()

    # and the library opens the recovered file and keeps writing
    db = make_db(f"sqlite+aiosqlite:///{path}")
    Row = row_model(db, table)
    ops = DatabaseOperations(db)
    try:
        await ops.insert_many(Row, [{"writer": "after", "seq": 0}])
        assert await ops.count(Row) == 501
        assert_no_leak(db)
    finally:
        await close_db(db)
    assert _integrity(path) == "ok"


def _file_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _integrity(path: Path) -> str:
    con = sqlite3.connect(path)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()
