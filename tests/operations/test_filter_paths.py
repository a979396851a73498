"""Relationship paths in filters and ``Q`` (issue 27 item 2): ``author__name="ada"``,
``tags__name="red"``. A to-one step is a correlated EXISTS (``.has()``), a to-many step
"any related row matches" (``.any()``): rows never repeat and counts stay right. At most
three steps. Compared with the same filter written by hand in SQLAlchemy, as a JOIN (with
DISTINCT through to-many steps), on every backend and both executor strategies.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Column, ForeignKey, Integer, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dsg_lib import AsyncDatabase, InvalidInputError, Q
from dsg_lib.filters import MAX_PATH_STEPS
from tests.helpers import fresh_env

PREFIX = f"fp_{os.getpid()}_"


@pytest.fixture
def models(db: AsyncDatabase) -> SimpleNamespace:
    post_tag = Table(
        PREFIX + "post_tag",
        db.Base.metadata,
        Column("post_id", ForeignKey(PREFIX + "post.id"), primary_key=True),
        Column("tag_id", ForeignKey(PREFIX + "tag.id"), primary_key=True),
    )

    class Author(db.Base):
        __tablename__ = PREFIX + "author"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        name: Mapped[str] = mapped_column(String(40))
        posts: Mapped[list[Post]] = relationship(back_populates="author")

    class Post(db.Base):
        __tablename__ = PREFIX + "post"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        title: Mapped[str] = mapped_column(String(40))
        author_id: Mapped[int | None] = mapped_column(ForeignKey(Author.id), nullable=True)
        author: Mapped[Author | None] = relationship(back_populates="posts")
        tags: Mapped[list[Tag]] = relationship(secondary=post_tag)
        comments: Mapped[list[Comment]] = relationship(back_populates="post")

    class Tag(db.Base):
        __tablename__ = PREFIX + "tag"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        name: Mapped[str] = mapped_column(String(40))

    class Comment(db.Base):
        __tablename__ = PREFIX + "comment"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        body: Mapped[str] = mapped_column(String(40))
        post_id: Mapped[int] = mapped_column(ForeignKey(Post.id))
        post: Mapped[Post] = relationship(back_populates="comments")

    return SimpleNamespace(Author=Author, Post=Post, Tag=Tag, Comment=Comment, post_tag=post_tag)


@pytest.fixture
async def env(env: SimpleNamespace, db: AsyncDatabase) -> SimpleNamespace:
    """``env`` of tests/operations/conftest.py, with authors, posts, tags and comments inserted."""
    ops, m = env.ops, env.m
    Author, Post, Tag, Comment, post_tag = m.Author, m.Post, m.Tag, m.Comment, m.post_tag
    await ops.insert_many(
        Author, [{"id": 1, "name": "ada"}, {"id": 2, "name": "alan"}, {"id": 3, "name": "grace"}]
    )
    await ops.insert_many(
        Post,
        [
            {"id": 1, "title": "sql one", "author_id": 1},
            {"id": 2, "title": "sql two", "author_id": 1},
            {"id": 3, "title": "sql three", "author_id": 1},
            {"id": 4, "title": "python", "author_id": 2},
            {"id": 5, "title": "orphan sql", "author_id": None},
        ],
    )
    await ops.insert_many(Tag, [{"id": 1, "name": "red"}, {"id": 2, "name": "blue"}])
    await ops.execute_many(
        [post_tag.insert().values(post_id=p, tag_id=t) for p, t in [(1, 1), (1, 2), (2, 1), (4, 2)]]
    )
    await ops.insert_many(
        Comment,
        [
            {"id": 1, "body": "nice", "post_id": 1},
            {"id": 2, "body": "nice", "post_id": 1},
            {"id": 3, "body": "meh", "post_id": 4},
        ],
    )
    return env


async def by_hand(db: AsyncDatabase, statement: Any) -> list[int]:
    async with AsyncSession(db.engine) as s:
        return sorted(set((await s.execute(statement)).scalars()))


# (model name, filters or Q, the same as a hand-written JOIN statement of ids)
CASES: list[tuple[str, Callable[[], Any], Callable[[SimpleNamespace], Any]]] = [
    (
        "Post",
        lambda: {"author__name": "ada"},
        lambda m: select(m.Post.id).join(m.Post.author).where(m.Author.name == "ada"),
    ),
    (
        "Post",
        lambda: {"author__name__in": ["ada", "alan"], "title__startswith": "sql"},
        lambda m: (
            select(m.Post.id)
            .join(m.Post.author)
            .where(m.Author.name.in_(["ada", "alan"]), m.Post.title.like("sql%"))
        ),
    ),
    (  # to-many: three matching posts, one author, no repeats
        "Author",
        lambda: {"posts__title__startswith": "sql"},
        lambda m: select(m.Author.id).join(m.Author.posts).where(m.Post.title.like("sql%")),
    ),
    (  # many-to-many
        "Post",
        lambda: {"tags__name": "red"},
        lambda m: select(m.Post.id).join(m.Post.tags).where(m.Tag.name == "red"),
    ),
    (  # two to-many steps
        "Author",
        lambda: {"posts__tags__name": "blue"},
        lambda m: select(m.Author.id).join(m.Author.posts).join(m.Post.tags).where(m.Tag.name == "blue"),
    ),
    (  # three steps: to-one, to-one, to-many
        "Comment",
        lambda: {"post__author__posts__title": "python"},
        lambda m: (
            select(m.Comment.id)
            .join(m.Comment.post)
            .join(m.Post.author)
            .join(m.Author.posts.of_type(other := __import__("sqlalchemy.orm").orm.aliased(m.Post)))
            .where(other.title == "python")
        ),
    ),
    (
        "Post",
        lambda: Q(tags__name="blue") | Q(author__name="ada"),
        lambda m: (
            select(m.Post.id)
            .outerjoin(m.Post.tags)
            .outerjoin(m.Post.author)
            .where((m.Tag.name == "blue") | (m.Author.name == "ada"))
        ),
    ),
    (  # through a to-many step, NOT is "no related row matches": posts without tags included
        "Post",
        lambda: ~Q(tags__name="red"),
        lambda m: select(m.Post.id).where(
            m.Post.id.not_in(select(m.post_tag.c.post_id).join(m.Tag).where(m.Tag.name == "red"))
        ),
    ),
    (
        "Author",
        lambda: Q.from_data({"or": [{"posts__comments__body": "meh"}, {"name": "grace"}]}),
        lambda m: (
            select(m.Author.id)
            .outerjoin(m.Author.posts)
            .outerjoin(m.Post.comments)
            .where((m.Comment.body == "meh") | (m.Author.name == "grace"))
        ),
    ),
    (
        "Post",
        lambda: {"author__name__is_null": False, "author__id__gte": 2},
        lambda m: select(m.Post.id).join(m.Post.author).where(m.Author.id >= 2),
    ),
]


def _args(spec: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return ((spec,), {}) if isinstance(spec, Q) else ((), dict(spec))


@pytest.mark.parametrize("case", range(len(CASES)))
async def test_paths_match_the_join_written_by_hand(env: SimpleNamespace, case: int) -> None:
    name, spec, statement = CASES[case]
    model, ops = getattr(env.m, name), env.ops
    expected = await by_hand(env.db, statement(env.m))
    assert expected, "every case matches something"
    where, filters = _args(spec())
    found = [row.id for row in await ops.find(model, *where, order_by="id", **filters)]
    assert found == expected  # in order and without a repeated row
    assert await ops.count(model, *where, **filters) == len(expected)
    assert await ops.exists(model, *where, **filters)
    page = await ops.paginate(select(model).order_by(model.id), 1, 2, where=list(where) or None, **filters)
    assert page.total == len(expected)
    assert [row.id for row in page.items] == expected[:2]
    streamed = [row.id async for row in ops.stream(select(model), where=list(where) or None, **filters)]
    assert sorted(streamed) == expected


async def test_count_through_to_many_counts_each_row_once(env: SimpleNamespace) -> None:
    m, ops = env.m, env.ops
    # author 1 has three "sql" posts: a JOIN counts three rows, the filter one author
    async with AsyncSession(env.db.engine) as s:
        joined = (
            await s.execute(
                select(func.count())
                .select_from(m.Author)
                .join(m.Author.posts)
                .where(m.Post.title.like("sql%"))
            )
        ).scalar_one()
    assert joined == 3
    assert await ops.count(m.Author, posts__title__startswith="sql") == 1
    assert await ops.count(m.Author, ~Q(posts__title__startswith="sql")) == 2


async def test_update_and_delete_where_through_a_path(env: SimpleNamespace) -> None:
    m, ops = env.m, env.ops
    changed = await ops.update_where(m.Post, {"title": "by alan"}, author__name="alan")
    assert changed == 1
    assert [p.title for p in await ops.find(m.Post, author__name="alan")] == ["by alan"]
    deleted = await ops.delete_where(m.Comment, post__tags__name="red")
    assert deleted == 2
    assert [c.id for c in await ops.find(m.Comment, order_by="id")] == [3]


@pytest.mark.parametrize(
    "filters,message",
    [
        ({"post__author__posts__author__name": "ada"}, f"at most {MAX_PATH_STEPS} relationship steps"),
        ({"writer__name": "ada"}, "'writer' is not a relationship of Comment"),
        ({"body__name": "ada"}, "unknown operator 'name'"),
        ({"post__nope": 1}, "'nope' is not a column of Post"),
        ({"post__author__name__regex": "a"}, "unknown operator 'regex'"),
        ({"post___sa_class_manager__name": 1}, "not a relationship"),
        ({"post__title__lt": None}, "cannot compare with None"),
        ({"post__author_id": "not a number"}, "post__author_id"),
    ],
)
async def test_bad_paths_are_refused_before_any_sql(env: SimpleNamespace, filters: Any, message: str) -> None:
    m, ops = env.m, env.ops
    with pytest.raises(InvalidInputError, match=message):
        await ops.find(m.Comment, **filters)
    with pytest.raises(InvalidInputError, match=message):
        await ops.find(m.Comment, Q(**filters))
    assert await ops.count(m.Comment) == 3


# ordering through to-one relationships: (order_by, the same order written by hand on a JOIN)
ORDERS: list[tuple[str, Any, Callable[[SimpleNamespace], Any]]] = [
    (
        "Post",
        ["author__name", "id"],
        lambda m: select(m.Post.id).join(m.Post.author).order_by(m.Author.name, m.Post.id),
    ),
    (
        "Post",
        ["-author__name", "-id"],
        lambda m: select(m.Post.id).join(m.Post.author).order_by(m.Author.name.desc(), m.Post.id.desc()),
    ),
    (
        "Comment",
        ["-post__author__name", "-post__title", "id"],
        lambda m: (
            select(m.Comment.id)
            .join(m.Comment.post)
            .join(m.Post.author)
            .order_by(m.Author.name.desc(), m.Post.title.desc(), m.Comment.id)
        ),
    ),
]


@pytest.mark.parametrize("case", range(len(ORDERS)))
async def test_order_by_through_to_one_matches_the_join(env: SimpleNamespace, case: int) -> None:
    name, order_by, statement = ORDERS[case]
    model = getattr(env.m, name)
    async with AsyncSession(env.db.engine) as s:
        expected = list((await s.execute(statement(env.m))).scalars())
    # rows without a related row sort as NULL, whose place differs per backend: left out here
    path = "author__id__is_null" if name == "Post" else "post__author__id__is_null"
    found = [row.id for row in await env.ops.find(model, order_by=order_by, **{path: False})]
    assert found == expected
    assert len(expected) > 2


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda ops, m: ops.find(m.Author, order_by="posts__title"), "to-many"),
        (lambda ops, m: ops.find(m.Post, order_by="-tags__name"), "to-many"),
        (lambda ops, m: ops.find(m.Comment, order_by="post__author__posts__title"), "to-many"),
        (
            lambda ops, m: ops.find(m.Comment, order_by="post__author__nope"),
            "'nope' is not a column of Author",
        ),
        (lambda ops, m: ops.find(m.Comment, order_by="writer__name"), "not a relationship of Comment"),
        (
            lambda ops, m: ops.find(m.Comment, order_by="post__author__posts__author__name"),
            f"at most {MAX_PATH_STEPS} relationship steps",
        ),
        (lambda ops, m: ops.paginate_keyset(m.Post, "author__name"), "paginate_keyset sorts by columns"),
    ],
)
async def test_order_by_through_to_many_or_bad_paths_is_refused(
    env: SimpleNamespace, call: Any, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        await call(env.ops, env.m)


async def test_self_referential_paths(db: AsyncDatabase) -> None:
    class Node(db.Base):
        __tablename__ = PREFIX + "node"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        name: Mapped[str] = mapped_column(String(20))
        parent_id: Mapped[int | None] = mapped_column(ForeignKey(PREFIX + "node.id"), nullable=True)
        parent: Mapped[Node | None] = relationship(remote_side=[id], back_populates="children")
        children: Mapped[list[Node]] = relationship(back_populates="parent")

    e = await fresh_env(db, SimpleNamespace(Node=Node))
    rows = [
        {"id": 1, "name": "root"},
        {"id": 2, "name": "a", "parent_id": 1},
        {"id": 3, "name": "b", "parent_id": 2},
    ]
    await e.ops.insert_many(Node, rows)
    assert [n.id for n in await e.ops.find(Node, parent__name="root")] == [2]
    assert [n.id for n in await e.ops.find(Node, children__name="b")] == [2]
    assert [n.id for n in await e.ops.find(Node, parent__parent__name="root")] == [3]
    assert sorted(n.id for n in await e.ops.find(Node, ~Q(children__name__is_null=False))) == [3]
    with pytest.raises(InvalidInputError, match="comes back to a table"):
        await e.ops.find(Node, order_by="parent__name")
