"""The benchmark's Tortoise ORM models module (``Tortoise.init(... "models": [this module])``).

Tortoise discovers the ``Model`` classes of a models module; their table names come from the
``table_name_generator`` the Tortoise contender passes to ``Tortoise.init`` (the read tables are
named by size, the write table by contender). The tables themselves are created by the runner,
the same for every contender.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class BenchRow(Model):
    """The columns of every benchmark table: id, name, grp (indexed), value, note."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64)
    grp = fields.IntField()
    value = fields.FloatField()
    note = fields.CharField(max_length=200, null=True)

    class Meta:
        abstract = True


class Read(BenchRow):
    """The read-only table of the point and read workloads."""


class Big(BenchRow):
    """The read-only table of the paging and count workloads."""


class StreamRow(BenchRow):
    """The read-only table of the stream workload."""


class Write(BenchRow):
    """The contender's own write table."""


class Author(Model):
    """The authors of issue 27's relationship workloads (``benchmarks.related``)."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64)


class Book(Model):
    """The books: ``author`` (its column ``author_id``), ``Author.books`` the other way."""

    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=64)
    author: fields.ForeignKeyRelation[Author] = fields.ForeignKeyField("models.Author", related_name="books")
