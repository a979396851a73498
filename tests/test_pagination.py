"""``dsg_lib.pagination``: pages, the cursor codec, and cursors bound to their query (every backend)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, CursorPage, DatabaseOperations, InvalidInputError, Page
from dsg_lib.pagination import CursorCodec


def test_page_fields_and_dict() -> None:
    page = Page(items=[1, 2], total=5, page=1, page_size=2, pages=3)
    assert page.has_next is True
    assert page.to_dict() == {"items": [1, 2], "total": 5, "page": 1, "page_size": 2, "pages": 3}
    assert Page(items=[5], total=5, page=3, page_size=2, pages=3).has_next is False
    assert Page(items=[1, 2], total=None, page=1, page_size=2, pages=None).has_next is True
    assert Page(items=[1], total=None, page=1, page_size=2, pages=None).has_next is False
    with pytest.raises(AttributeError):
        page.total = 9  # type: ignore[misc]  # frozen


def test_cursor_page() -> None:
    assert CursorPage(items=[1], next_cursor=None).has_next is False
    assert CursorPage(items=[1], next_cursor="c").has_next is True
    assert CursorPage(items=[], next_cursor=None).prev_cursor is None


VALUES: list[Any] = [
    1,
    -5,
    2**62,
    1.5,
    "text",
    "日本😀",
    "",
    True,
    None,
    dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc),
    dt.datetime(2024, 1, 2, 3, 4, 5),
    dt.date(2024, 2, 29),
    dt.time(12, 30, 1),
    decimal.Decimal("12.3400"),
    uuid.UUID(int=7),
    b"\x00\xff",
]


def test_roundtrip_types() -> None:
    codec = CursorCodec(b"secret")
    token = codec.encode("fp", VALUES, "next")
    values, direction = codec.decode(token, "fp")
    assert direction == "next"
    assert values == VALUES
    assert [type(v) for v in values] == [type(v) for v in VALUES]


def test_cursor_is_url_safe_and_bounded() -> None:
    token = CursorCodec().encode("fp", ["a/b+c?d=e&f"], "prev")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_rejects_tampering() -> None:
    codec = CursorCodec(b"k")
    token = codec.encode("fp", [1, "a"], "next")
    body, sig = token.split(".")
    for i in range(0, len(body), 3):  # flip characters throughout the body
        flipped = body[:i] + ("A" if body[i] != "A" else "B") + body[i + 1 :]
        with pytest.raises(InvalidInputError):
            codec.decode(f"{flipped}.{sig}", "fp")
    # re-encode a changed payload without the key
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["v"] = [999, "a"]
    forged = (
        base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=").decode()
    )
    with pytest.raises(InvalidInputError):
        codec.decode(f"{forged}.{sig}", "fp")
    # another key
    with pytest.raises(InvalidInputError):
        CursorCodec(b"other").decode(token, "fp")


@pytest.mark.parametrize(
    "cursor",
    ["", ".", "..", "abc", "a.b.c", "!!!.###", "x" * 5000, None, 5, b"bytes", ["a.b"]],
    ids=repr,
)
def test_rejects_malformed(cursor: Any) -> None:
    with pytest.raises(InvalidInputError):
        CursorCodec().decode(cursor, "fp")


def test_rejects_other_fingerprint() -> None:
    codec = CursorCodec()
    with pytest.raises(InvalidInputError) as info:
        codec.decode(codec.encode("fp1", [1], "next"), "fp2")
    assert "another" in str(info.value)


def test_signed_but_bad_payload_is_rejected() -> None:
    """A payload signed with the right key but malformed inside is still an InvalidInputError."""
    codec = CursorCodec(b"k")

    def signed(payload: Any) -> str:
        body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=")
        return f"{body.decode()}.{codec._sign(body)}"

    for payload in (
        {"f": "fp", "v": [1], "d": "sideways"},
        {"f": "fp", "v": [{"$unknown": "x"}], "d": "next"},
        {"f": "fp", "v": [[1, 2]], "d": "next"},
        {"f": "fp", "v": [{"$dt": "not a date"}], "d": "next"},
        {"f": "fp", "v": [{"$dt": 5}], "d": "next"},
        {"f": "fp", "d": "next"},
        [1, 2, 3],
        "string",
    ):
        with pytest.raises(InvalidInputError):
            codec.decode(signed(payload), "fp")


def test_encode_rejects_unsupported_values() -> None:
    with pytest.raises(InvalidInputError):
        CursorCodec().encode("fp", [float("nan")], "next")
    with pytest.raises(InvalidInputError):
        CursorCodec().encode("fp", [object()], "next")


# --------------------------------------------------------------------------- #
# A keyset cursor is bound to its query: filters, their values and the order   #
# --------------------------------------------------------------------------- #


async def test_cursor_is_refused_by_another_querys_filters(db: AsyncDatabase) -> None:
    class PagedPost(db.Base):
        __tablename__ = "paged_posts"
        id: Mapped[int] = mapped_column(primary_key=True)
        user_id: Mapped[int]
        title: Mapped[str] = mapped_column(String(40))

    await db.create_tables()
    ops = DatabaseOperations(db)
    await ops.insert_many(PagedPost, [{"user_id": u, "title": f"t{i}"} for u in (1, 2) for i in range(3)])

    first = await ops.paginate_keyset(PagedPost, order_by="title", limit=2, user_id=1)
    assert first.next_cursor is not None
    same = await ops.paginate_keyset(PagedPost, order_by="title", after=first.next_cursor, user_id=1)
    assert [(p.user_id, p.title) for p in same.items] == [(1, "t2")]

    for foreign in (
        ops.paginate_keyset(PagedPost, order_by="title", after=first.next_cursor, user_id=2),
        ops.paginate_keyset(PagedPost, order_by="title", after=first.next_cursor),
        ops.paginate_keyset(PagedPost, order_by="title", after=first.next_cursor, user_id__in=[1, 2]),
    ):
        with pytest.raises(InvalidInputError, match="another query"):
            await foreign
    await db.drop_tables()
