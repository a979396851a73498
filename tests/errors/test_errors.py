"""Tests for ``dsg_lib.async_database_functions.errors``: the hierarchy and real driver errors mapped."""

from __future__ import annotations

import asyncio
import os
import traceback
from typing import Any

import pytest
from sqlalchemy import CheckConstraint, ForeignKey, String, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Mapped, mapped_column

import dsg_lib
from dsg_lib import AsyncDatabase, DBConfig
from dsg_lib.async_database_functions import errors
from dsg_lib.async_database_functions.errors import (
    ConfigurationError,
    ConstraintViolationError,
    DatabaseError,
    DatabaseUnavailableError,
    InvalidInputError,
    MissingDependencyError,
    MultipleRecordsFoundError,
    NotConnectedError,
    PoolTimeoutError,
    QueryError,
    RecordNotFoundError,
    SessionMissingError,
    StatementTimeoutError,
    TransactionConflictError,
    TransactionEndedError,
    map_errors,
    translate_error,
)
from dsg_lib.errors import ScopeRequiredError

# Suffix for table names: concurrent test runs on the same servers do not collide.
RUN = os.getpid()

ALL_ERRORS = [
    DatabaseError,
    ConfigurationError,
    MissingDependencyError,
    InvalidInputError,
    NotConnectedError,
    SessionMissingError,
    DatabaseUnavailableError,
    PoolTimeoutError,
    RecordNotFoundError,
    MultipleRecordsFoundError,
    ConstraintViolationError,
    TransactionConflictError,
    TransactionEndedError,
    QueryError,
    StatementTimeoutError,
]

DRIVER_MODULES = {
    "sqlite_memory": "sqlite3",
    "sqlite_file": "sqlite3",
    "postgresql": "asyncpg",
    "mariadb": "pymysql",
}

# --------------------------------------------------------------------------- shape and hierarchy


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_to_dict_shape(cls: type[DatabaseError]) -> None:
    err = cls("something went wrong")
    assert err.details == "something went wrong"
    assert str(err) == "something went wrong"
    assert err.to_dict() == {"error": cls.__name__, "details": "something went wrong"}
    assert isinstance(err, DatabaseError)
    assert isinstance(err, Exception)


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_errors_are_exported_everywhere(cls: type[DatabaseError]) -> None:
    assert getattr(dsg_lib, cls.__name__) is cls
    assert getattr(dsg_lib.async_database_functions, cls.__name__) is cls
    assert cls.__name__ in errors.__all__


def test_default_details_is_empty_string() -> None:
    assert DatabaseError().details == ""
    assert DatabaseError().to_dict() == {"error": "DatabaseError", "details": ""}


@pytest.mark.parametrize(
    ("cls", "parents"),
    [
        (ConfigurationError, (DatabaseError, ValueError)),
        (MissingDependencyError, (ConfigurationError, DatabaseError, ValueError)),
        (InvalidInputError, (DatabaseError, ValueError)),
        (NotConnectedError, (DatabaseError,)),
        (SessionMissingError, (DatabaseError,)),
        (ScopeRequiredError, (SessionMissingError, DatabaseError)),  # a 500: the route lacks its scope
        (DatabaseUnavailableError, (DatabaseError,)),
        (PoolTimeoutError, (DatabaseUnavailableError, DatabaseError)),
        (RecordNotFoundError, (DatabaseError, LookupError)),
        (MultipleRecordsFoundError, (DatabaseError,)),
        (ConstraintViolationError, (DatabaseError,)),
        (TransactionConflictError, (DatabaseError,)),
        (TransactionEndedError, (DatabaseError,)),
        (QueryError, (DatabaseError,)),
        (StatementTimeoutError, (QueryError, DatabaseError)),
    ],
)
def test_hierarchy(cls: type[DatabaseError], parents: tuple[type, ...]) -> None:
    for parent in parents:
        assert issubclass(cls, parent), f"{cls.__name__} should be a {parent.__name__}"


@pytest.mark.parametrize(
    ("cls", "not_parent"),
    [
        (ConstraintViolationError, ValueError),
        (QueryError, ValueError),
        (DatabaseUnavailableError, ConfigurationError),
        (RecordNotFoundError, ValueError),
        (TransactionConflictError, QueryError),
        (TransactionEndedError, TransactionConflictError),  # never retried: an implicit commit stays
        (MultipleRecordsFoundError, LookupError),
    ],
)
def test_hierarchy_is_not_too_wide(cls: type, not_parent: type) -> None:
    assert not issubclass(cls, not_parent)


def test_caught_by_builtin_bases() -> None:
    with pytest.raises(ValueError):
        raise ConfigurationError("bad key")
    with pytest.raises(LookupError):
        raise RecordNotFoundError("no row")
    with pytest.raises(ValueError):
        raise InvalidInputError("bad value")


def test_constraint_violation_attributes() -> None:
    err = ConstraintViolationError("dup", constraint="uq_email", kind="unique")
    assert (err.constraint, err.kind, err.details) == ("uq_email", "unique", "dup")
    assert err.to_dict() == {"error": "ConstraintViolationError", "details": "dup"}
    plain = ConstraintViolationError("x")
    assert (plain.constraint, plain.kind) == (None, "unknown")


# --------------------------------------------------------------------------- translate_error / map_errors


def test_translate_sqlalchemy_errors() -> None:
    nf = translate_error(sa_exc.NoResultFound("No row was found"))
    assert isinstance(nf, RecordNotFoundError) and isinstance(nf.driver_error, sa_exc.NoResultFound)
    many = translate_error(sa_exc.MultipleResultsFound("Multiple rows"))
    assert isinstance(many, MultipleRecordsFoundError)
    pool = translate_error(sa_exc.TimeoutError("QueuePool limit reached"))
    assert isinstance(pool, PoolTimeoutError)
    assert isinstance(translate_error(sa_exc.ArgumentError("bad argument")), InvalidInputError)


def test_translate_returns_dsg_errors_unchanged() -> None:
    err = QueryError("already mapped")
    assert translate_error(err) is err


def test_translate_os_error_is_unavailable_and_masks_secrets() -> None:
    original = ConnectionRefusedError(111, "Connect call failed for user:hunter2@127.0.0.1")
    err = translate_error(original, secrets=["hunter2"])
    assert isinstance(err, DatabaseUnavailableError)
    assert "hunter2" not in str(err)
    assert "***" in str(err)
    assert err.driver_error is original


def test_map_errors_translates_and_chains() -> None:
    original = sa_exc.NoResultFound("nothing")
    with pytest.raises(RecordNotFoundError) as info, map_errors():
        raise original
    assert info.value.driver_error is original


def test_map_errors_passes_other_exceptions_through() -> None:
    with pytest.raises(KeyError), map_errors():
        raise KeyError("not a database error")
    mapped = SessionMissingError("as is")
    with pytest.raises(SessionMissingError) as info, map_errors():
        raise mapped
    assert info.value is mapped


def test_map_errors_does_not_swallow_cancellation() -> None:
    with pytest.raises(asyncio.CancelledError), map_errors():
        raise asyncio.CancelledError()


# --------------------------------------------------------------------------- real driver errors


def make_models(db: AsyncDatabase, backend: str) -> tuple[Any, Any]:
    parent_table = f"err_parent_{backend}_{RUN}"
    child_table = f"err_child_{backend}_{RUN}"
    parent = type(
        f"ErrParent_{backend}_{RUN}",
        (db.Base,),
        {
            "__tablename__": parent_table,
            "__table_args__": (CheckConstraint("score >= 0", name=f"ck_err_score_{backend}_{RUN}"),),
            "__annotations__": {"id": Mapped[int], "email": Mapped[str], "score": Mapped[int]},
            "id": mapped_column(primary_key=True, autoincrement=False),
            "email": mapped_column(String(100), unique=True, nullable=False),
            "score": mapped_column(default=0),
        },
    )
    child = type(
        f"ErrChild_{backend}_{RUN}",
        (db.Base,),
        {
            "__tablename__": child_table,
            "__annotations__": {"id": Mapped[int], "parent_id": Mapped[int]},
            "id": mapped_column(primary_key=True, autoincrement=False),
            "parent_id": mapped_column(ForeignKey(f"{parent_table}.id")),
        },
    )
    return parent, child


async def _setup(db: AsyncDatabase, backend: str) -> tuple[Any, Any]:
    parent, child = make_models(db, backend)
    await db.drop_tables()
    await db.create_tables()
    async with db.transaction() as session:
        session.add(parent(id=1, email="first@example.com"))
    return parent, child


def _check_cause(err: DatabaseError, backend: str, sa_class: type) -> None:
    """``driver_error`` is the driver's own (PEP 249) exception, SQLAlchemy's wrapper skipped.

    It is out of the printed chain: ``__cause__`` is None and the context suppressed.

    ``sa_class`` is the SQLAlchemy class that wrapped it: the driver error is the PEP 249
    class of the same name (or, for asyncpg, SQLAlchemy's adapter around the asyncpg error).
    """
    cause = err.driver_error
    assert cause is not None and not isinstance(cause, sa_exc.SQLAlchemyError), repr(cause)
    assert err.__cause__ is None and err.__suppress_context__
    modules = []
    item: BaseException | None = cause
    while item is not None:  # asyncpg's error sits behind SQLAlchemy's adapter class
        modules.append(type(item).__module__)
        item = item.__cause__
    assert any(m.startswith(DRIVER_MODULES[backend]) for m in modules), modules
    assert len(modules) <= 2, modules
    if sa_class is not sa_exc.DBAPIError:
        assert sa_class.__name__ in [c.__name__ for c in type(cause).__mro__], repr(cause)


async def test_duplicate_key_is_unique_violation(db: AsyncDatabase, backend: str) -> None:
    parent, _ = await _setup(db, backend)
    secret_value = "duplicated-value-7781@example.com"
    async with db.transaction() as session:
        session.add(parent(id=2, email=secret_value))
    with pytest.raises(ConstraintViolationError) as info:
        async with db.transaction() as session:
            session.add(parent(id=3, email=secret_value))
    err = info.value
    assert err.kind == "unique"
    assert err.constraint, "the unique constraint (or column) should be reported"
    assert "email" in err.constraint or parent.__tablename__ in err.constraint
    assert secret_value not in str(err)
    assert secret_value not in str(err.to_dict())
    _check_cause(err, backend, sa_exc.IntegrityError)
    assert db.pool_status()["checked_out"] == 0


async def test_duplicate_primary_key_is_unique_violation(db: AsyncDatabase, backend: str) -> None:
    parent, _ = await _setup(db, backend)
    with pytest.raises(ConstraintViolationError) as info:
        async with db.transaction() as session:
            await session.execute(parent.__table__.insert().values(id=1, email="other@example.com"))
    assert info.value.kind == "unique"
    _check_cause(info.value, backend, sa_exc.IntegrityError)


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
async def test_mysql_duplicate_message_hides_value(db: AsyncDatabase, backend: str) -> None:
    # MySQL/MariaDB put the duplicated value in their own message; dsg_lib redacts it
    parent, _ = await _setup(db, backend)
    with pytest.raises(ConstraintViolationError) as info:
        async with db.transaction() as session:
            session.add(parent(id=9, email="first@example.com"))
    message = str(info.value)
    assert "first@example.com" not in message
    assert "Duplicate entry" in message and "1062" in message
    # the driver's own message did carry it: the redaction is real
    assert "first@example.com" in str(info.value.driver_error)


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
async def test_mysql_duplicate_message_shows_value_with_echo(backend: str, db_url: str) -> None:
    db = AsyncDatabase(DBConfig({"database_uri": db_url, "echo": True}))
    try:
        parent, _ = await _setup(db, f"{backend}_echo")
        with pytest.raises(ConstraintViolationError) as info:
            async with db.transaction() as session:
                session.add(parent(id=9, email="first@example.com"))
        assert "first@example.com" in str(info.value)
    finally:
        await db.drop_tables()
        await db.disconnect()


async def test_foreign_key_violation(db: AsyncDatabase, backend: str) -> None:
    _, child = await _setup(db, backend)
    with pytest.raises(ConstraintViolationError) as info:
        async with db.transaction() as session:
            session.add(child(id=1, parent_id=999))
    assert info.value.kind == "foreign_key"
    if not backend.startswith("sqlite"):  # SQLite does not name the failing key
        assert info.value.constraint
    _check_cause(info.value, backend, sa_exc.IntegrityError)


async def test_foreign_key_violation_on_delete(db: AsyncDatabase, backend: str) -> None:
    parent, child = await _setup(db, backend)
    async with db.transaction() as session:
        session.add(child(id=1, parent_id=1))
    with pytest.raises(ConstraintViolationError) as info:
        async with db.transaction() as session:
            await session.execute(parent.__table__.delete().where(parent.id == 1))
    assert info.value.kind == "foreign_key"


async def test_not_null_violation(db: AsyncDatabase, backend: str) -> None:
    parent, _ = await _setup(db, backend)
    with pytest.raises(ConstraintViolationError) as info:
        async with db.transaction() as session:
            await session.execute(parent.__table__.insert().values(id=5, email=None))
    assert info.value.kind == "not_null"
    assert "email" in str(info.value)
    _check_cause(info.value, backend, sa_exc.IntegrityError)


async def test_check_violation(db: AsyncDatabase, backend: str) -> None:
    parent, _ = await _setup(db, backend)
    with pytest.raises(ConstraintViolationError) as info:
        async with db.transaction() as session:
            session.add(parent(id=6, email="neg@example.com", score=-1))
    assert info.value.kind == "check"
    assert info.value.constraint is not None
    assert f"ck_err_score_{backend}" in info.value.constraint
    # MariaDB reports a failed CHECK as an OperationalError: mapping is by errno, not class
    _check_cause(info.value, backend, sa_exc.DBAPIError)


async def test_syntax_error_is_query_error(db: AsyncDatabase, backend: str) -> None:
    with pytest.raises(QueryError) as info:
        async with db.get_db_session() as session:
            await session.execute(text("SELEC 1 FROMM nowhere"))
    err = info.value
    assert type(err) is QueryError
    assert "syntax" in str(err).lower()
    _check_cause(err, backend, sa_exc.DBAPIError)
    assert err.to_dict()["error"] == "QueryError"
    assert db.pool_status()["checked_out"] == 0


async def test_unknown_table_is_query_error(db: AsyncDatabase, backend: str) -> None:
    with pytest.raises(QueryError) as info:
        async with db.transaction() as session:
            await session.execute(text("SELECT * FROM err_table_that_does_not_exist"))
    assert "err_table_that_does_not_exist" in str(info.value)
    assert "create_tables()" in str(info.value)  # the newcomer hint
    _check_cause(info.value, backend, sa_exc.DBAPIError)


async def test_no_row_and_multiple_rows(db: AsyncDatabase, backend: str) -> None:
    parent, _ = await _setup(db, backend)
    async with db.transaction() as session:
        session.add(parent(id=2, email="second@example.com"))
    with pytest.raises(RecordNotFoundError) as info:
        async with db.get_db_session() as session:
            (await session.execute(select(parent).where(parent.id == 404))).scalar_one()
    assert isinstance(info.value.driver_error, sa_exc.NoResultFound)
    with pytest.raises(MultipleRecordsFoundError) as many:
        async with db.get_db_session() as session:
            (await session.execute(select(parent))).scalar_one()
    assert isinstance(many.value.driver_error, sa_exc.MultipleResultsFound)


async def test_session_usable_after_mapped_error(db: AsyncDatabase, backend: str) -> None:
    parent, _ = await _setup(db, backend)
    with pytest.raises(ConstraintViolationError):
        async with db.transaction() as session:
            session.add(parent(id=1, email="first@example.com"))
    async with db.transaction() as session:
        session.add(parent(id=2, email="ok@example.com"))
    async with db.get_db_session() as session:
        assert len((await session.execute(select(parent))).scalars().all()) == 2


async def test_pool_timeout(backend: str, db_url: str) -> None:
    config: dict[str, Any] = {"database_uri": db_url, "pool_timeout": 0.3}
    if backend != "sqlite_memory":  # in-memory SQLite always has exactly one connection
        config.update(pool_size=1, max_overflow=0)
    db = AsyncDatabase(DBConfig(config))
    try:
        async with db.get_db_session() as holder:
            await holder.execute(text("SELECT 1"))
            with pytest.raises(PoolTimeoutError) as info:
                async with db.get_db_session() as other:
                    await other.execute(text("SELECT 1"))
            assert isinstance(info.value, DatabaseUnavailableError)
            assert isinstance(info.value.driver_error, sa_exc.TimeoutError)
        assert db.pool_status()["checked_out"] == 0
    finally:
        await db.disconnect()


def test_errors_from_sync_entry_points_are_not_chained_to_the_event_loop_probe() -> None:
    """``run_coroutine`` (the CLI, migrations) probes for a running loop; its RuntimeError must not
    head every traceback ("no running event loop")."""
    from dsg_lib._sync_bridge import run_coroutine

    async def fails() -> None:
        raise RecordNotFoundError("gone")

    with pytest.raises(RecordNotFoundError) as info:
        run_coroutine(fails())
    assert "no running event loop" not in "".join(traceback.format_exception(info.value))


def test_cli_debug_traceback_starts_with_the_error() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "dsg_lib", "--debug", "check", "postgresql://u@127.0.0.1:1/db"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0 and "Traceback" in done.stderr, done.stderr
    assert "no running event loop" not in done.stderr, done.stderr
