"""``Q``: filter groups (AND / OR / NOT) over ``field__op=value`` filters, also from JSON data.

A ``Q`` is a tree: leaves are the keyword filters of `dsg_lib.filters.build_filters`
(checked against the model's columns, every value a bound parameter), inner
nodes are AND, OR and NOT. It is turned into one SQLAlchemy expression only
when an operation runs it against a model, so one ``Q`` serves any model
that has those columns.

Bounds (both checked when a ``Q`` is built from data and again when it runs):
`MAX_DEPTH` levels of nesting and `MAX_TERMS` groups and filters in all.

Examples:
    ``T`` is a mapped class with one integer primary key column, ``id``.

    >>> q = Q(id__lt=3) | ~Q(id__gte=10)
    >>> q
    Q(or: [Q(id__lt=...), Q(not: Q(id__gte=...))])
    >>> print(q.resolve(T))
    t.id < :id_1 OR t.id < :id_2
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, false, not_, or_

from ..errors import InvalidInputError
from ._lookups import build_filters

__all__ = ["MAX_DEPTH", "MAX_TERMS", "Q", "is_q", "where_list"]

#: deepest nesting of groups accepted (``{"not": {"not": ...}}`` counts one level per group)
MAX_DEPTH = 50
#: most groups plus filters one ``Q`` may hold in all
MAX_TERMS = 1000

_KindT = Literal["and", "or", "not"]
_GROUP_KEYS = ("and", "or", "not")


class Q:
    """A group of filters combined with ``&`` (AND), ``|`` (OR) and ``~`` (NOT).

    ``Q(**filters)`` ANDs ``field__op=value`` filters (the operators of
    `dsg_lib.filters.OPERATORS`). Pass a ``Q`` wherever an operation takes
    ``*where`` expressions. ``Q()`` matches every row (and counts as no filter
    for ``update_where`` / ``delete_where``, which then still ask for
    ``all_rows=True``); ``~Q()`` matches none.

    The repr shows filter names, never values.

    Attributes:
        kind: ``"and"``, ``"or"`` or ``"not"``: how ``filters`` and ``children`` combine.
        filters: This node's own ``field__op`` filters (ANDed).
        children: The groups inside this one (one for ``"not"``).

    Args:
        **filters: ``field`` or ``field__op`` keys with their values.

    Examples:
        >>> adults_or_named_a = Q(age__gte=18) | Q(name__startswith="A")
        >>> adults_or_named_a
        Q(or: [Q(age__gte=...), Q(name__startswith=...)])
        >>> ~Q(name="x") & Q(age=3)
        Q(and: [Q(not: Q(name=...)), Q(age=...)])
    """

    __slots__ = ("children", "filters", "kind")

    def __init__(self, **filters: Any) -> None:
        self.kind: _KindT = "and"
        self.filters: dict[str, Any] = dict(filters)
        self.children: tuple[Q, ...] = ()

    @classmethod
    def _group(cls, kind: _KindT, children: tuple[Q, ...]) -> Q:
        node = cls.__new__(cls)
        node.kind, node.filters, node.children = kind, {}, children
        return node

    def _combine(self, other: object, kind: _KindT) -> Q:
        if not isinstance(other, Q):
            return NotImplemented  # type: ignore[no-any-return]
        # flatten a | b | c into one OR of three: chains of any length stay one level deep
        parts: list[Q] = []
        for side in (self, other):
            same = side.kind == kind and not side.filters
            parts.extend(side.children if same else (side,))
        return Q._group(kind, tuple(parts))

    def __and__(self, other: object) -> Q:
        return self._combine(other, "and")

    def __or__(self, other: object) -> Q:
        return self._combine(other, "or")

    def __invert__(self) -> Q:
        return Q._group("not", (self,))

    def __repr__(self) -> str:
        if self.kind == "not":
            return f"Q(not: {self.children[0]!r})"
        leaves = ", ".join(f"{key}=..." for key in self.filters)
        if not self.children:
            return f"Q({leaves})"
        inner = ", ".join(repr(child) for child in self.children)
        return f"Q({self.kind}: [{inner}]" + (f", {leaves})" if leaves else ")")

    @classmethod
    def from_data(cls, data: Any) -> Q:
        """Build a ``Q`` from JSON-shaped data (a dict, as decoded from a request).

        Keys ``"and"`` and ``"or"`` take a non-empty list of such dicts,
        ``"not"`` one dict; any other key is a ``field__op`` filter. All keys
        of one dict are ANDed. Shape, depth (`MAX_DEPTH`) and size
        (`MAX_TERMS`) are checked here; column names, operators and values
        when the ``Q`` runs against a model. Nothing is ever rendered into SQL.

        Raises:
            InvalidInputError: malformed data, too deep or too large.

        Examples:
            >>> Q.from_data({"or": [{"age__lt": 18}, {"age__gt": 65}], "not": {"name__startswith": "A"}})
            Q(and: [Q(or: [Q(age__lt=...), Q(age__gt=...)]), Q(not: Q(name__startswith=...))])
            >>> Q.from_data({"or": "x"})
            Traceback (most recent call last):
            ...
            dsg_lib.errors.InvalidInputError: filter data at $.or: "or" takes a non-empty list of objects
        """
        counter = [0]
        return cls._parse(data, 1, "$", counter)

    @classmethod
    def _parse(cls, data: Any, depth: int, where: str, counter: list[int]) -> Q:
        if depth > MAX_DEPTH:
            raise InvalidInputError(f"filter data nested deeper than {MAX_DEPTH} levels")
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"filter data at {where}: expected an object, got {type(data).__name__}")
        _count(counter, 1)
        leaves: dict[str, Any] = {}
        groups: list[Q] = []
        for key, value in data.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"filter data at {where}: keys must be strings")
            if key in ("and", "or"):
                if not isinstance(value, list) or not value:
                    raise InvalidInputError(
                        f'filter data at {where}.{key}: "{key}" takes a non-empty list of objects'
                    )
                _count(counter, len(value))
                kids = tuple(
                    cls._parse(item, depth + 1, f"{where}.{key}[{i}]", counter)
                    for i, item in enumerate(value)
                )
                groups.append(Q._group("and" if key == "and" else "or", kids))
            elif key == "not":
                groups.append(~cls._parse(value, depth + 1, f"{where}.not", counter))
            else:
                _count(counter, 1)
                leaves[key] = value
        node = Q(**leaves)
        if not groups:
            return node
        if not leaves and len(groups) == 1:
            return groups[0]
        return Q._group("and", ((node,) if leaves else ()) + tuple(groups))

    def resolve(
        self, model: Any, *, dialect: str | None = None, validate: bool = True
    ) -> ColumnElement[bool] | None:
        """The SQLAlchemy expression of this group for ``model``; ``None`` when it matches every row.

        Args:
            model: The mapped class the filter names refer to.
            dialect: The backend name (as for `dsg_lib.filters.build_filters`).
            validate: Check values against the column types.

        Raises:
            InvalidInputError: unknown column or operator, bad value, too deep or too large.

        Examples:
            ``T`` is a mapped class with one integer primary key column, ``id``.

            >>> print(Q(id__in=[1, 2]).resolve(T))
            t.id IN (__[POSTCOMPILE_id_1])
            >>> Q().resolve(T) is None
            True
        """
        return _resolve(self, model, dialect, validate, 1, [0])


def _resolve(
    self: Q, model: Any, dialect: str | None, validate: bool, depth: int, counter: list[int]
) -> ColumnElement[bool] | None:
    if depth > MAX_DEPTH:
        raise InvalidInputError(f"filter group nested deeper than {MAX_DEPTH} levels")
    _count(counter, 1 + len(self.filters))
    own = build_filters(model, self.filters, validate=validate, dialect=dialect)
    kids = [_resolve(child, model, dialect, validate, depth + 1, counter) for child in self.children]
    if self.kind == "not":
        inner = kids[0]
        return false() if inner is None else not_(inner)
    if self.kind == "or":
        if any(kid is None for kid in kids):
            return None  # one side matches everything
        parts = [k for k in kids if k is not None]
        return parts[0] if len(parts) == 1 else or_(*parts)
    parts = own + [k for k in kids if k is not None]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else and_(*parts)


def _count(counter: list[int], n: int) -> None:
    counter[0] += n
    if counter[0] > MAX_TERMS:
        raise InvalidInputError(f"filter group holds more than {MAX_TERMS} groups and filters")


def is_q(value: object) -> bool:
    """Whether ``value`` is a `Q`."""
    return isinstance(value, Q)


def where_list(where: Any) -> tuple[Any, ...]:
    """The ``where=`` keyword of the paging operations as a tuple of conditions.

    It takes a `Q`, one SQLAlchemy expression, or a list / tuple of them.

    Examples:
        >>> where_list(Q(id=1))
        (Q(id=...),)
        >>> where_list(None)
        ()
    """
    if where is None:
        return ()
    if isinstance(where, (list, tuple)):
        return tuple(where)
    return (where,)
