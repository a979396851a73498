"""devsetgo-lib's schema mixins: ``dsg_lib.async_database_functions.base_schema``.

Each mixin adds a UUID-string ``pkid`` primary key and ``date_created`` /
``date_updated`` timestamps with exactly the column definitions devsetgo-lib
uses (types, indexes, comments, server defaults), so tables created by
devsetgo-lib and by this face are the same and an Alembic autogenerate after
switching finds nothing to change. ``SchemaBaseSQLite`` stamps the times in
Python; the others let the server stamp them with the
dialect's UTC expression. As in devsetgo-lib, the columns are ``DateTime``
without time zone, so use the mixin of your backend: ``SchemaBaseSQLite``'s
aware Python datetimes do not fit PostgreSQL's ``timestamp`` through asyncpg.
Server-set values are fetched back on insert
(``eager_defaults``), so they can be read after the session has closed.

New code can use the timezone-aware mixins of ``dsg_lib.schema`` instead
(``UTCDateTime``, ``utcnow`` and ``SoftDeleteMixin`` are re-exported here).

Examples:
    >>> from sqlalchemy.orm import DeclarativeBase
    >>> class Base(DeclarativeBase):
    ...     pass
    >>> class Item(SchemaBasePostgres, Base):
    ...     __tablename__ = "items"
    >>> str(Item.__table__.c.date_created.server_default.arg)
    "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"
    >>> sorted(Item.__table__.columns.keys())
    ['date_created', 'date_updated', 'pkid']
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Column, DateTime, String, text

from ..schema import SoftDeleteMixin as SoftDeleteMixin
from ..schema import UTCDateTime as UTCDateTime
from ..schema import utcnow as utcnow

__all__ = [
    "SchemaBaseCockroachDB",
    "SchemaBaseFirebird",
    "SchemaBaseMSSQL",
    "SchemaBaseMySQL",
    "SchemaBaseOracle",
    "SchemaBasePostgres",
    "SchemaBaseSQLite",
    "SchemaBaseSybase",
    "SoftDeleteMixin",
    "UTCDateTime",
    "date_created_comment",
    "date_updated_comment",
    "get_utc_now",
    "utcnow",
    "uuid_comment",
]

uuid_comment = "Unique identifier for each record, a string representation of a UUID"
date_created_comment = "Date and time when a row was inserted, defaults to current UTC time"
date_updated_comment = "Date and time when a row was last updated, defaults to current UTC time on update"


def get_utc_now() -> datetime:
    """The current time as an aware UTC ``datetime`` (``SchemaBaseSQLite``'s default).

    Examples:
        >>> get_utc_now().tzinfo
        datetime.timezone.utc
    """
    return datetime.now(timezone.utc)


def _new_pkid() -> str:
    return str(uuid.uuid4())


def _pkid() -> Column[str]:
    # A fresh Column per mixin: a Column object can belong to one table only.
    return Column(String(36), primary_key=True, index=True, default=_new_pkid, comment=uuid_comment)


def _stamps(created: dict[str, Any], updated: dict[str, Any], comments: tuple[str, str]) -> dict[str, Any]:
    return {
        "pkid": _pkid(),
        "date_created": Column(DateTime, index=True, comment=comments[0], **created),
        "date_updated": Column(DateTime, index=True, comment=comments[1], **updated),
        "__mapper_args__": {"eager_defaults": True},
    }


def _server_stamped(name: str, expression: str, comments: tuple[str, str]) -> type:
    """A mixin whose timestamps the server sets with ``expression`` (on insert and update)."""
    attrs = _stamps(
        {"server_default": text(expression)},
        {"server_default": text(expression), "onupdate": text(expression)},
        comments,
    )
    attrs["__doc__"] = f"``pkid`` and timestamps set by the server with ``{expression}``."
    attrs["__module__"] = __name__
    return type(name, (), attrs)


_UTC = (date_created_comment, date_updated_comment)

SchemaBaseSQLite: type = type(
    "SchemaBaseSQLite",
    (),
    {
        **_stamps({"default": get_utc_now}, {"default": get_utc_now, "onupdate": get_utc_now}, _UTC),
        "__doc__": "``pkid`` and timestamps set in Python (`get_utc_now`), for SQLite (MySQL/MariaDB too).",
        "__module__": __name__,
    },
)
SchemaBasePostgres = _server_stamped("SchemaBasePostgres", "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')", _UTC)
SchemaBaseCockroachDB = _server_stamped(
    "SchemaBaseCockroachDB", "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')", _UTC
)
SchemaBaseMySQL = _server_stamped("SchemaBaseMySQL", "UTC_TIMESTAMP()", _UTC)
SchemaBaseOracle = _server_stamped("SchemaBaseOracle", "SYS_EXTRACT_UTC(SYSTIMESTAMP)", _UTC)
SchemaBaseMSSQL = _server_stamped("SchemaBaseMSSQL", "GETUTCDATE()", _UTC)
SchemaBaseSybase = _server_stamped("SchemaBaseSybase", "GETUTCDATE()", _UTC)
# Firebird's CURRENT_TIMESTAMP is local time, and devsetgo-lib's comments say so.
SchemaBaseFirebird = _server_stamped(
    "SchemaBaseFirebird",
    "CURRENT_TIMESTAMP",
    (
        "Date and time when a row was inserted, defaults to current time",
        "Date and time when a row was last updated, defaults to current time on update",
    ),
)
