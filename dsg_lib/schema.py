"""Mixins adding a UUID ``pkid`` primary key and UTC ``date_created`` / ``date_updated``.

Use them with any declarative base:

```python
class User(base_schema.SchemaBasePostgres, async_db.Base):
    __tablename__ = "users"
    name: Mapped[str] = mapped_column(String(100))
```

Timestamps are timezone-aware UTC ``datetime`` objects on every backend.
``SchemaBaseSQLite`` sets them in Python; ``SchemaBasePostgres`` and
``SchemaBaseMySQL`` let the server set them (``now()`` / ``UTC_TIMESTAMP(6)``),
and the values are fetched back on insert (``eager_defaults``), so they can be
read after the session closed. If your model defines ``__mapper_args__``,
include ``"eager_defaults": True`` in it.

Examples:
    >>> from sqlalchemy.orm import DeclarativeBase
    >>> class Base(DeclarativeBase):
    ...     pass
    >>> class Item(SchemaBaseSQLite, Base):
    ...     __tablename__ = "items"
    >>> sorted(Item.__table__.columns.keys())
    ['date_created', 'date_updated', 'pkid']
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import DateTime, Dialect, String, func, text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from .backends import backend_for

__all__ = [
    "SchemaBaseMySQL",
    "SchemaBasePostgres",
    "SchemaBaseSQLite",
    "SoftDeleteMixin",
    "UTCDateTime",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time as an aware UTC ``datetime``.

    Examples:
        >>> utcnow().tzinfo
        datetime.timezone.utc
    """
    return datetime.now(timezone.utc)


def _new_pkid() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """A ``DateTime`` stored as UTC and always read back timezone-aware.

    Naive datetimes given to it are taken to be UTC.

    Examples:
        >>> from sqlalchemy import Column
        >>> Column("seen_at", UTCDateTime()).type.impl.timezone
        True
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return backend_for(dialect.name).utc_datetime_type(dialect)

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            return value  # type: ignore[no-any-return]
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        utc: datetime = value.astimezone(timezone.utc)
        if not backend_for(dialect.name).stores_time_zones:
            utc = utc.replace(tzinfo=None)
        return utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite server-side defaults come back as text
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)  # type: ignore[no-any-return]
        return value.astimezone(timezone.utc)  # type: ignore[no-any-return]


class SchemaBaseSQLite:
    """``pkid`` (UUID string) and Python-side UTC timestamps; works on every backend.

    Examples:
        >>> "pkid" in SchemaBaseSQLite.__dict__
        True
    """

    pkid: Mapped[str] = mapped_column(
        String(36), primary_key=True, default=_new_pkid, index=True, unique=True
    )
    date_created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    date_updated: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow, index=True)


class SchemaBasePostgres:
    """``pkid`` and server-side UTC timestamps (``now()``) for PostgreSQL.

    Examples:
        >>> SchemaBasePostgres.__mapper_args__
        {'eager_defaults': True}
    """

    __mapper_args__: dict[str, Any] = {"eager_defaults": True}

    pkid: Mapped[str] = mapped_column(
        String(36), primary_key=True, default=_new_pkid, index=True, unique=True
    )
    date_created: Mapped[datetime] = mapped_column(UTCDateTime(), server_default=func.now(), index=True)
    date_updated: Mapped[datetime] = mapped_column(
        UTCDateTime(), server_default=func.now(), onupdate=func.now(), index=True
    )


class SchemaBaseMySQL:
    """``pkid`` and server-side UTC timestamps (``UTC_TIMESTAMP(6)``) for MySQL / MariaDB.

    Examples:
        >>> SchemaBaseMySQL.__mapper_args__
        {'eager_defaults': True}
    """

    __mapper_args__: dict[str, Any] = {"eager_defaults": True}

    pkid: Mapped[str] = mapped_column(
        String(36), primary_key=True, default=_new_pkid, index=True, unique=True
    )
    date_created: Mapped[datetime] = mapped_column(
        UTCDateTime(),
        server_default=text("(UTC_TIMESTAMP(6))"),
        index=True,
    )
    date_updated: Mapped[datetime] = mapped_column(
        UTCDateTime(),
        server_default=text("(UTC_TIMESTAMP(6))"),
        onupdate=func.utc_timestamp(6),
        index=True,
    )


class SoftDeleteMixin:
    """Opt-in soft delete: a nullable UTC ``deleted_at`` column.

    For models with this mixin, ``DatabaseOperations`` deletes set
    ``deleted_at`` instead of removing the row (``hard=True`` removes it),
    reads skip deleted rows unless ``include_deleted=True``, and ``restore()``
    clears the mark.

    Examples:
        >>> from sqlalchemy import Integer
        >>> from sqlalchemy.orm import DeclarativeBase, mapped_column
        >>> class Base(DeclarativeBase):
        ...     pass
        >>> class Doc(SoftDeleteMixin, Base):
        ...     __tablename__ = "docs"
        ...     id = mapped_column(Integer, primary_key=True)
        >>> Doc.__table__.c.deleted_at.nullable
        True
    """

    deleted_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), nullable=True, default=None, index=True
    )
