"""Page containers and the opaque, tamper-evident keyset cursor.

A cursor is ``base64url(json payload) + "." + HMAC-SHA256``. The payload holds
the sort-key values of the last row and a fingerprint of the query (its
filters, their values and its ordering), so a cursor is rejected when it was
altered, truncated, or made for another query: user 1's cursor is refused on
user 2's listing. Values inside are still type-checked and bound, never formatted into
SQL. Set the ``cursor_secret`` config key to make cursors unforgeable across
your deployment (the default key only detects accidents).

Examples:
    >>> codec = CursorCodec(b"k")
    >>> token = codec.encode("fp", ["a", 1], "next")
    >>> codec.decode(token, "fp")
    (['a', 1], 'next')
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import hashlib
import hmac
import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import InvalidInputError

__all__ = ["CursorCodec", "CursorPage", "Page"]

T = TypeVar("T")
_DEFAULT_KEY = b"dsg_lib-keyset-cursor-v1"
_MAX_CURSOR = 4096


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of an offset-paginated query.

    Attributes:
        items: The rows of this page.
        total: Rows matching the query (``None`` when ``with_total=False``).
        page: The 1-based page number.
        page_size: Rows per page.
        pages: Number of pages (``None`` without a total).

    Examples:
        >>> Page(items=[1, 2], total=5, page=1, page_size=2, pages=3).has_next
        True
    """

    items: list[T]
    total: int | None
    page: int
    page_size: int
    pages: int | None

    @property
    def has_next(self) -> bool:
        """Whether a later page exists (by the total, or a full page without one).

        Examples:
            >>> Page(items=[1], total=1, page=1, page_size=10, pages=1).has_next
            False
        """
        if self.pages is not None:
            return self.page < self.pages
        return len(self.items) == self.page_size

    def to_dict(self) -> dict[str, Any]:
        """The devsetgo-lib ``paginate_query`` shape.

        Examples:
            >>> sorted(Page(items=[], total=0, page=1, page_size=10, pages=0).to_dict())
            ['items', 'page', 'page_size', 'pages', 'total']
        """
        return {
            "items": self.items,
            "total": self.total,
            "page": self.page,
            "page_size": self.page_size,
            "pages": self.pages,
        }


@dataclass(frozen=True)
class CursorPage(Generic[T]):
    """One page of a keyset-paginated query.

    Attributes:
        items: The rows, in the requested order.
        next_cursor: Pass as ``after=`` for the next page; ``None`` on the last page.
        prev_cursor: Pass as ``before=`` for the previous page; ``None`` on the first.

    Examples:
        >>> CursorPage(items=[1], next_cursor=None).has_next
        False
    """

    items: list[T]
    next_cursor: str | None
    prev_cursor: str | None = field(default=None)

    @property
    def has_next(self) -> bool:
        """Whether ``next_cursor`` leads to more rows.

        Examples:
            >>> CursorPage(items=[1], next_cursor="x").has_next
            True
        """
        return self.next_cursor is not None


def _to_json(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError("cursor values must be finite numbers")
        return value
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$d": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$t": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$dec": str(value)}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode()}
    if hasattr(value, "value") and hasattr(value, "name"):  # enum members
        return {"$enum": value.name}
    raise InvalidInputError(f"cannot put a {type(value).__name__} sort key into a cursor")


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, raw),) = value.items()
        if not isinstance(raw, str):
            raise ValueError("bad tagged value")
        if tag == "$dt":
            return dt.datetime.fromisoformat(raw)
        if tag == "$d":
            return dt.date.fromisoformat(raw)
        if tag == "$t":
            return dt.time.fromisoformat(raw)
        if tag == "$dec":
            return decimal.Decimal(raw)
        if tag == "$uuid":
            return uuid.UUID(raw)
        if tag == "$b":
            return base64.b64decode(raw)
        if tag == "$enum":
            return raw
        raise ValueError("unknown tag")
    if isinstance(value, (dict, list)):
        raise ValueError("nested value")
    return value


def query_fingerprint(stmt: Any, ordering: Sequence[tuple[str, str, bool]]) -> str:
    """A short digest of a query's SQL, its bound filter values and its ordering.

    A keyset cursor carries it: a cursor is only accepted by the query that
    made it (same filters with the same values, same order). The values are
    hashed, never stored.

    Args:
        stmt: The ``select()`` before the keyset condition and ordering are added.
        ordering: ``(table, column key, descending)`` per sort key.

    Examples:
        >>> from sqlalchemy import column, select, table
        >>> posts = table("posts", column("id"), column("user_id"))
        >>> order = [("posts", "id", False)]
        >>> one = query_fingerprint(select(posts).where(posts.c.user_id == 1), order)
        >>> two = query_fingerprint(select(posts).where(posts.c.user_id == 2), order)
        >>> (len(one), one == two)
        (16, False)
    """
    try:
        compiled = stmt.compile()
        text, params = str(compiled), sorted((k, repr(v)) for k, v in compiled.params.items())
    except Exception:  # a construct only a real dialect renders: bind the ordering and the filters' text
        text, params = repr(getattr(stmt, "whereclause", None)), []
    digest = hashlib.sha256(repr((text, params, list(ordering))).encode())
    return digest.hexdigest()[:16]


class CursorCodec:
    """Encode and verify keyset cursors.

    Args:
        key: The HMAC key.

    Examples:
        >>> CursorCodec(b"k").decode("garbage", "fp")
        Traceback (most recent call last):
        ...
        dsg_lib.errors.InvalidInputError: invalid pagination cursor
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or _DEFAULT_KEY

    def _sign(self, body: bytes) -> str:
        digest = hmac.new(self._key, body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def encode(self, fingerprint: str, values: Sequence[Any], direction: str) -> str:
        """Make a cursor for the row whose sort-key values are ``values``.

        Examples:
            >>> isinstance(CursorCodec().encode("fp", [1], "next"), str)
            True
        """
        payload = {"f": fingerprint, "v": [_to_json(v) for v in values], "d": direction}
        body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=")
        return f"{body.decode()}.{self._sign(body)}"

    def decode(self, cursor: Any, fingerprint: str) -> tuple[list[Any], str]:
        """Verify ``cursor`` and return ``(values, direction)``.

        Raises:
            InvalidInputError: malformed, tampered, or made for another ordering.

        Examples:
            >>> c = CursorCodec()
            >>> try:
            ...     c.decode(c.encode("fp", [1], "next"), "other")
            ... except InvalidInputError as err:
            ...     print(err)
            pagination cursor belongs to another query (other filters or ordering)
        """
        bad = InvalidInputError("invalid pagination cursor")
        # a cursor is ASCII by construction; anything else would break the byte comparisons below
        if (
            not isinstance(cursor, str)
            or not cursor.isascii()
            or len(cursor) > _MAX_CURSOR
            or cursor.count(".") != 1
        ):
            raise bad
        body, signature = cursor.split(".")
        if not hmac.compare_digest(self._sign(body.encode()), signature):
            raise bad
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            payload = json.loads(raw)
            values = [_from_json(v) for v in payload["v"]]
            direction = payload["d"]
            found = payload["f"]
        except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError):
            raise bad from None
        if found != fingerprint:
            raise InvalidInputError("pagination cursor belongs to another query (other filters or ordering)")
        if direction not in ("next", "prev"):
            raise bad
        return values, direction
