"""The devsetgo-lib face's ``DatabaseOperations``, on every backend.

Success shapes and error dicts as devsetgo-lib gives them; typed errors inside
``transaction()`` and with ``raise_errors=True``; the modern methods raise.
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
from sqlalchemy import Column, Integer, String, bindparam, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from dsg_lib import (
    AsyncDatabase,
    ConstraintViolationError,
    InvalidInputError,
    QueryError,
    RecordNotFoundError,
)
from dsg_lib import DatabaseOperations as ModernOperations
from dsg_lib.async_database_functions import database_operations
from dsg_lib.async_database_functions.database_operations import (
    DatabaseErrorResult,
    DatabaseOperations,
    handle_exceptions,
)
from tests.helpers import count_rows

PREFIX = f"face_{os.getpid()}_"
SECRET = "secret-value-7f3a"


@pytest.fixture
async def env(db: AsyncDatabase) -> SimpleNamespace:
    class Member(db.Base):
        __tablename__ = PREFIX + "member"
        pkid = Column(Integer, primary_key=True, autoincrement=True)
        name = Column(String(50), unique=True, nullable=False)
        color = Column(String(20), nullable=True)

    await db.drop_tables()
    await db.create_tables()
    return SimpleNamespace(db=db, ops=DatabaseOperations(db), Member=Member)


async def seed(env: SimpleNamespace, *names: str) -> None:
    done = await env.ops.execute_many([(insert(env.Member), {"name": n, "color": "red"}) for n in names])
    assert done == "complete"


# --------------------------------------------------------------------------- success shapes


async def test_insert_pairs_report_rowcount_and_primary_key(env: SimpleNamespace) -> None:
    meta = await env.ops.execute_one(insert(env.Member), {"name": "Ada"}, return_metadata=True)
    assert meta["rowcount"] == 1
    assert meta["inserted_primary_key"] == [1]
    results = await env.ops.execute_many(
        [(insert(env.Member), {"name": "Alan"}), (insert(env.Member), {"name": "Grace"})], return_results=True
    )
    assert [r["rowcount"] for r in results] == [1, 1]
    assert [r["inserted_primary_key"] for r in results] == [[2], [3]]
    assert await count_rows(env.db, env.Member) == 3


async def test_execute_one_select_returns_the_rows(env: SimpleNamespace) -> None:
    await seed(env, "Ada", "Alan")
    members = await env.ops.execute_one(select(env.Member).order_by(env.Member.name))
    assert [m.name for m in members] == ["Ada", "Alan"]
    assert await env.ops.execute_one(select(env.Member.name).order_by(env.Member.name)) == ["Ada", "Alan"]
    query = select(env.Member.color).where(env.Member.name == bindparam("who"))
    assert await env.ops.execute_one(query, {"who": "Ada"}) == ["red"]


async def test_dml_is_complete_or_metadata(env: SimpleNamespace) -> None:
    await seed(env, "Ada", "Alan", "Grace")
    assert await env.ops.execute_one(update(env.Member).values(color="blue")) == "complete"
    meta = await env.ops.execute_one(
        delete(env.Member).where(env.Member.name.in_(["Ada", "Alan"])), return_metadata=True
    )
    assert meta == {"rowcount": 2}
    meta = await env.ops.execute_one(text(f"SELECT name, color FROM {PREFIX}member"), return_metadata=True)
    assert meta["rows"] == [{"name": "Grace", "color": "blue"}]


async def test_reads_are_scalars_objects_or_json_ready_dicts(env: SimpleNamespace) -> None:
    await seed(env, "Ada", "Alan")
    by_name = env.Member.name
    rows = await env.ops.read_query(select(env.Member.name, env.Member.color).order_by(by_name))
    assert rows == [{"name": "Ada", "color": "red"}, {"name": "Alan", "color": "red"}]
    assert json.loads(json.dumps(rows)) == rows  # what FastAPI needs
    multi = await env.ops.read_multi_query(
        {"names": select(by_name).order_by(by_name), "all": select(env.Member).order_by(by_name)}
    )
    assert multi["names"] == ["Ada", "Alan"]
    assert [m.name for m in multi["all"]] == ["Ada", "Alan"]
    assert (await env.ops.read_one_record(select(env.Member).where(by_name == "Ada"))).color == "red"
    assert await env.ops.read_one_record(select(env.Member).where(by_name == "Nobody")) is None
    assert await env.ops.count_query(select(env.Member)) == 2
    page = await env.ops.paginate_query(select(env.Member.name, env.Member.color).order_by(by_name), 2, 1)
    assert page == {
        "items": [{"name": "Alan", "color": "red"}],
        "total": 2,
        "page": 2,
        "page_size": 1,
        "pages": 2,
    }


async def test_crud_methods_return_devsetgo_shapes(env: SimpleNamespace) -> None:
    ada = await env.ops.create_one(env.Member(name="Ada"))
    many = await env.ops.create_many([env.Member(name="Alan"), env.Member(name="Grace")])
    assert [m.pkid for m in many] == [2, 3]
    assert (await env.ops.update_one(env.Member, ada.pkid, {"color": "green", "pkid": 99})).color == "green"
    assert await env.ops.delete_one(env.Member, ada.pkid) == {"success": "Record deleted successfully"}
    assert await env.ops.delete_many(env.Member, "pkid", [m.pkid for m in many]) == 2
    assert await count_rows(env.db, env.Member) == 0


# --------------------------------------------------------------------------- error dicts


async def test_constraint_violation_is_an_integrity_error_dict(env: SimpleNamespace) -> None:
    await seed(env, SECRET)
    result = await env.ops.execute_one(insert(env.Member), {"name": SECRET})
    assert isinstance(result, DatabaseErrorResult)
    assert result["error"] == "IntegrityError"
    assert set(result) == {"error", "details"} and result["details"]
    assert SECRET not in result["details"]  # bound values stay out of error messages
    assert isinstance(result.exception, ConstraintViolationError)
    assert await count_rows(env.db, env.Member) == 1


async def test_failed_batch_changes_nothing(env: SimpleNamespace) -> None:
    await seed(env, "Ada")
    result = await env.ops.execute_many(
        [(insert(env.Member), {"name": "Alan"}), (text("SELEC bad FROM nowhere"), None)]
    )
    assert result["error"] == "SQLAlchemyError"
    assert isinstance(result.exception, QueryError)
    assert await count_rows(env.db, env.Member) == 1


async def test_not_found_and_bad_page_dicts(env: SimpleNamespace) -> None:
    assert await env.ops.update_one(env.Member, 12345, {"color": "x"}) == {
        "error": "Record not found",
        "details": "No record found with pkid 12345",
    }
    assert (await env.ops.delete_one(env.Member, "not-a-number"))["error"] == "Record not found"
    bad = await env.ops.paginate_query(select(env.Member), page=0)
    assert isinstance(bad, DatabaseErrorResult) and bad["error"] == "Invalid pagination parameters"
    unknown = await env.ops.delete_many(env.Member, "no_such_column", [1])
    assert unknown["error"] == "General Exception"


# --------------------------------------------------------------------------- raising


async def test_inside_transaction_failures_raise_and_roll_back(env: SimpleNamespace) -> None:
    await seed(env, "Ada")
    with pytest.raises(ConstraintViolationError):
        async with env.db.transaction():
            assert await env.ops.execute_one(insert(env.Member), {"name": "Alan"}) == "complete"
            await env.ops.execute_one(insert(env.Member), {"name": "Ada"})  # raises: nothing half-done
    assert await count_rows(env.db, env.Member) == 1
    with pytest.raises(RecordNotFoundError):
        async with env.db.transaction():
            await env.ops.update_one(env.Member, 12345, {"color": "x"})


async def test_transaction_joins_and_commits(env: SimpleNamespace) -> None:
    async with env.db.transaction():
        await env.ops.execute_one(insert(env.Member), {"name": "Ada"})
        assert await env.ops.read_query(select(env.Member.name)) == ["Ada"]  # sees its own write
    assert await count_rows(env.db, env.Member) == 1


async def test_raise_errors_raises_everywhere_and_keeps_shapes(env: SimpleNamespace) -> None:
    strict = DatabaseOperations(env.db, raise_errors=True)
    assert await strict.execute_many([(insert(env.Member), {"name": "Ada"})]) == "complete"
    with pytest.raises(ConstraintViolationError):
        await strict.execute_one(insert(env.Member), {"name": "Ada"})
    with pytest.raises(QueryError):
        await strict.read_query(text("SELEC nothing"))
    with pytest.raises(RecordNotFoundError):
        await strict.delete_one(env.Member, 12345)


async def test_modern_methods_raise_on_the_face(env: SimpleNamespace) -> None:
    with pytest.raises(RecordNotFoundError):
        await env.ops.get_one(env.Member, name="Nobody")
    assert await env.ops.insert_many(env.Member, [{"name": "Ada"}]) == 1
    with pytest.raises(ConstraintViolationError):
        await env.ops.insert_many(env.Member, [{"name": "Ada"}])
    with pytest.raises(InvalidInputError):  # the modern guard: no filter, no all_rows=True
        await env.ops.delete_where(env.Member)
    assert await env.ops.delete_where(env.Member, name="Ada") == 1


async def test_modern_operations_keep_raising(env: SimpleNamespace) -> None:
    modern = ModernOperations(env.db)
    with pytest.raises(QueryError):
        await modern.read_query(text("SELEC nothing"))
    with pytest.raises(RecordNotFoundError):
        await modern.delete_one(env.Member, 12345)


# --------------------------------------------------------------------------- handle_exceptions


def test_handle_exceptions_shapes() -> None:
    integrity = handle_exceptions(IntegrityError("INSERT ...", {"v": SECRET}, Exception("dup")))
    assert integrity["error"] == "IntegrityError" and SECRET not in integrity["details"]
    assert isinstance(integrity.exception, ConstraintViolationError)
    assert handle_exceptions(SQLAlchemyError("boom")) == {"error": "SQLAlchemyError", "details": "boom"}
    general = handle_exceptions(ValueError("oops"))
    assert general == {"error": "General Exception", "details": "oops"} and isinstance(
        general.exception, ValueError
    )
    odd = handle_exceptions(IntegrityError(None, None, "orig is a string"))  # type: ignore[arg-type]
    assert odd["error"] == "IntegrityError" and "orig is a string" in odd["details"]
    assert isinstance(odd.exception, ConstraintViolationError)
    typed = handle_exceptions(ConstraintViolationError("duplicate key"))
    assert typed == {"error": "IntegrityError", "details": "duplicate key"}


def test_module_names_devsetgo_lib_code_imports() -> None:
    assert set(database_operations.__all__) >= {
        "DatabaseErrorResult",
        "DatabaseOperations",
        "handle_exceptions",
    }
    assert issubclass(DatabaseOperations, ModernOperations)  # a thin face over the modern core
    assert isinstance(DatabaseErrorResult({"error": "e", "details": "d"}), dict)
