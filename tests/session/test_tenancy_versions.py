"""Tenant scopes open only on a SQLAlchemy that scopes relationship subqueries (2.1+); 2.0 refuses.

SQLAlchemy 2.0 does not apply ``with_loader_criteria`` inside the EXISTS of a
relationship's ``any()`` / ``has()``, so a filter through a relationship would
see every tenant's rows. These tests tie the version gate to what the
installed SQLAlchemy really does: if a 2.0 release ever fixes it (or 2.1
regresses), the first test fails and says the gate is wrong.
"""

from __future__ import annotations

import pytest
from sqlalchemy import ForeignKey, String, create_engine, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, with_loader_criteria

from dsg_lib import AsyncDatabase, ConfigurationError, DBConfig
from dsg_lib.session import tenancy


def _loader_criteria_reach_relationship_subqueries() -> bool:
    """Whether this SQLAlchemy applies a tenant's loader criteria inside ``any()`` (sync SQLite)."""

    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = "tv_items"
        id: Mapped[int] = mapped_column(primary_key=True)
        tenant_id: Mapped[int]
        notes: Mapped[list[Note]] = relationship()

    class Note(Base):
        __tablename__ = "tv_notes"
        id: Mapped[int] = mapped_column(primary_key=True)
        tenant_id: Mapped[int]
        item_id: Mapped[int] = mapped_column(ForeignKey("tv_items.id"))
        body: Mapped[str] = mapped_column(String(20))

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:

        @event.listens_for(session, "do_orm_execute")
        def _scope(state: object) -> None:
            state.statement = state.statement.options(  # type: ignore[attr-defined]
                with_loader_criteria(Note, Note.tenant_id == 1, include_aliases=True)
            )

        session.add_all([Item(id=1, tenant_id=1), Note(id=1, tenant_id=2, item_id=1, body="theirs")])
        session.flush()
        found = session.scalars(select(Item).where(Item.notes.any(Note.body == "theirs"))).all()
    engine.dispose()
    return not found  # tenant 2's note must not make tenant 1's item match


def test_the_version_gate_matches_what_sqlalchemy_does() -> None:
    assert _loader_criteria_reach_relationship_subqueries() == tenancy.SUPPORTED


@pytest.mark.skipif(
    tenancy.SUPPORTED, reason="SQLAlchemy 2.1+: scopes open (tests/operations/test_tenant_scoping.py)"
)
def test_scoped_refuses_where_relationship_filters_would_leak() -> None:
    db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
    with pytest.raises(ConfigurationError, match=r"SQLAlchemy 2\.1 or later"):
        db.scoped(tenant_id=1)
