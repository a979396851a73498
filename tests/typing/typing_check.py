"""Static typing check for DatabaseOperations (run with mypy, not collected by pytest).

mypy --strict tests/typing/typing_check.py (also run by .ci/run)
"""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dsg_lib import AsyncDatabase, CursorPage, DatabaseOperations, DBConfig, Page


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "typing_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


class UserOut(BaseModel):
    id: int
    name: str


async def check_schemas() -> None:
    """``as_=Schema`` and ``create_one(Model, data)`` keep their types (issue 27)."""
    db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}), base=Base)
    ops = DatabaseOperations(db)
    out: UserOut | None = await ops.get(User, 1, as_=UserOut)
    one_out: UserOut = await ops.get_one(User, name="a", as_=UserOut)
    many_out: list[UserOut] = await ops.find(User, order_by="id", as_=UserOut)
    made: User = await ops.create_one(User, {"name": "b"})
    print(out, one_out.name, [u.name for u in many_out], made.name)


async def check() -> None:
    db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}), base=Base)
    ops = DatabaseOperations(db)
    maybe: User | None = await ops.get(User, 1)
    one: User = await ops.get_one(User, name="a")
    many: list[User] = await ops.find(User, name__startswith="a", order_by="-id", limit=5)
    pair: tuple[User, bool] = await ops.get_or_create(User, name="a")
    created: User = await ops.create_one(User(name="b"))
    created_many: list[User] = await ops.create_many([User(name="c")])
    updated: User = await ops.update_one(User, 1, {"name": "d"})
    total: int = await ops.count(User)
    found: bool = await ops.exists(User, id=1)
    inserted: int = await ops.insert_many(User, [{"name": "e"}])
    upserted: int = await ops.upsert(User, [{"id": 1, "name": "f"}], conflict="id")
    changed: int = await ops.update_where(User, {"name": "g"}, id=1)
    deleted: int = await ops.delete_where(User, id=1)
    page: Page[object] = await ops.paginate(User, 1, 10)
    cursor_page: CursorPage[object] = await ops.paginate_keyset(User, "id")
    mappings: list[dict[str, object]] = await ops.find_mappings(User)
    name: str = one.name
    if maybe is not None:
        name = maybe.name
    print(
        maybe,
        one,
        many,
        pair,
        created,
        created_many,
        updated,
        total,
        found,
        inserted,
        upserted,
        changed,
        deleted,
        page,
        cursor_page,
        mappings,
        name,
    )


async def wrong() -> None:
    db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}), base=Base)
    ops = DatabaseOperations(db)
    # get() may return None: assigning to a non-optional User must be an error
    u: User = await ops.get(User, 1)  # type: ignore[assignment]
    print(u)
    # as_= gives the schema, not the model
    s: list[User] = await ops.find(User, as_=UserOut)  # type: ignore[arg-type]
    print(s)
