"""``upsert`` inside ``db.scoped(...)``: a conflicting row of another scope is left alone (private)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, case

from . import _bulk


def guarded_upsert(
    backend: str,
    table: Any,
    rows: list[dict[str, Any]],
    conflict: tuple[str, ...],
    update: tuple[str, ...],
    columns: Mapping[str, Any],
    scope: Mapping[str, Any],
) -> Any:
    """`_bulk.upsert_statement` that updates a conflicting row only if it has the scope's values.

    PostgreSQL / SQLite: ``ON CONFLICT .. DO UPDATE .. WHERE table.attr = excluded.attr`` (a
    skipped row is not counted); MySQL / MariaDB: each updated column keeps its value unless the
    existing row's scope columns equal the new row's (the scope columns are never in ``update``).
    """
    if not update:
        return _bulk.upsert_statement(backend, table, rows, conflict, update)
    scope_cols = [columns[key].key for key in scope]
    if backend in ("postgresql", "sqlite"):
        from sqlalchemy.dialects import postgresql, sqlite

        dialect_insert: Any = postgresql.insert if backend == "postgresql" else sqlite.insert
        stmt: Any = dialect_insert(table).values(rows)
        same = and_(*[table.c[c] == stmt.excluded[c] for c in scope_cols])
        stmt = stmt.on_conflict_do_update(
            index_elements=list(conflict), set_={c: stmt.excluded[c] for c in update}, where=same
        )
        return stmt.returning(*[table.c[c] for c in conflict])
    from sqlalchemy.dialects.mysql import insert as mysql_insert

    stmt = mysql_insert(table).values(rows)
    same = and_(*[table.c[c] == stmt.inserted[c] for c in scope_cols])
    return stmt.on_duplicate_key_update({c: case((same, stmt.inserted[c]), else_=table.c[c]) for c in update})
