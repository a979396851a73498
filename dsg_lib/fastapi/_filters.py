"""``filter_query``: an allow-listed query-string filter for FastAPI routes (issue 27 item 3).

Imported by `dsg_lib.fastapi` (which checks that FastAPI is installed); use it from there.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError, WithJsonSchema

from ..errors import InvalidInputError
from ..filters import OPERATORS, Q, build_filters, field_column, mapper_of, order_terms

__all__ = ["Filter", "filter_query"]

#: the query parameter that carries the sort order
ORDER_PARAM = "order_by"
_LIST_OPS = ("in", "not_in")
_TEXT_OPS = ("like", "ilike", "contains", "startswith", "endswith")


@dataclass(frozen=True)
class Filter:
    """What `filter_query` read from a request.

    Attributes:
        where: The filters as one ``Q`` (``Q()`` when none was given): pass it
            where an operation takes ``*where`` (or as ``where=``).
        order_by: The requested order (``["-name", "age"]``), or ``None``.

    Examples:
        >>> Filter(Q(name="x"))
        Filter(where=Q(name=...), order_by=None)
    """

    where: Q
    order_by: list[str] | None = None

    def __repr__(self) -> str:
        return f"Filter(where={self.where!r}, order_by={self.order_by!r})"


@dataclass(frozen=True)
class _Param:
    name: str  # the query parameter
    key: str  # the Q filter key (field__op)
    op: str
    adapter: TypeAdapter[Any]


def _python_type(column: Any, op: str) -> Any:
    if op == "is_null":
        return bool
    if op in _TEXT_OPS:
        return str
    try:
        return column.type.python_type
    except NotImplementedError:
        return str


def _param_name(field: str, op: str) -> str:
    return field if op == "eq" else f"{field}__{op}"


def filter_query(
    model: Any, allow: Mapping[str, Iterable[str]], *, order_by: Sequence[str] = ()
) -> Callable[..., Any]:
    """A FastAPI dependency reading allow-listed ``field__op`` query parameters into a `Filter`.

    Each field of ``allow`` (a column, or a relationship path such as
    ``"author__email"``) lists the operators a client may use on it
    (`dsg_lib.filters.OPERATORS`). The query parameter is ``field`` for
    ``"eq"`` and ``field__op`` for the others; ``in`` / ``not_in`` take the
    parameter repeated (``?age__in=1&age__in=2``). With ``order_by``, the
    parameter ``order_by`` takes a comma-separated list of those names, each
    optionally prefixed with ``-`` for descending.

    Every parameter appears in OpenAPI with the column's type. A query
    parameter the route does not declare, an operator outside ``allow``, a
    scalar parameter given twice, or a value that does not fit the column is
    a 422 (FastAPI's ``RequestValidationError``) naming the parameter and
    what is allowed; the value is never echoed.

    Args:
        model: The mapped class to filter.
        allow: Field name -> operators allowed on it.
        order_by: Field names the client may sort by (columns, or to-one
            relationship paths such as ``"author__name"``).

    Returns:
        A dependency for ``Depends(...)`` returning a `Filter`.

    Raises:
        InvalidInputError: (when called) an unknown field or operator in ``allow`` or ``order_by``.

    Examples:
        >>> from fastapi import Depends, FastAPI
        >>> from sqlalchemy import Integer, String
        >>> from sqlalchemy.orm import DeclarativeBase, mapped_column
        >>> class Base(DeclarativeBase):
        ...     pass
        >>> class Person(Base):
        ...     __tablename__ = "people"
        ...     id = mapped_column(Integer, primary_key=True)
        ...     name = mapped_column(String(50))
        ...     age = mapped_column(Integer)
        >>> people_filter = filter_query(Person, {"name": ["eq", "contains"], "age": ["lt", "gte"]},
        ...                              order_by=["name", "age"])
        >>> app = FastAPI()
        >>> @app.get("/people")
        ... async def people(f: Filter = Depends(people_filter)) -> list[str]:
        ...     return []   # ops.find(Person, f.where, order_by=f.order_by)
        >>> sorted(p["name"] for p in app.openapi()["paths"]["/people"]["get"]["parameters"])
        ['age__gte', 'age__lt', 'name', 'name__contains', 'order_by']
    """
    mapper_of(model)
    params: dict[str, _Param] = {}
    for field, ops in allow.items():
        column = field_column(model, field)
        if isinstance(ops, str):
            raise InvalidInputError(f"filter_query: allow[{field!r}] takes a list of operators, got a str")
        for op in ops:
            if op not in OPERATORS:
                raise InvalidInputError(
                    f"filter_query: unknown operator {op!r} for {field!r}; accepted: {', '.join(OPERATORS)}"
                )
            kind = _python_type(column, op)
            adapter: TypeAdapter[Any] = TypeAdapter(list[kind] if op in _LIST_OPS else kind)  # type: ignore[valid-type]
            params[_param_name(field, op)] = _Param(_param_name(field, op), f"{field}__{op}", op, adapter)
    if ORDER_PARAM in params:
        raise InvalidInputError(f"filter_query: {ORDER_PARAM!r} is the sort parameter, not a field")
    sortable = list(order_by)
    if sortable:
        order_terms(model, sortable)  # unknown names, and paths through to-many steps, refused here
    order_choices = sorted({*sortable, *(f"-{name}" for name in sortable)})
    known = set(params) | ({ORDER_PARAM} if sortable else set())

    async def dependency(request: Request, **raw: Any) -> Filter:
        errors: list[dict[str, Any]] = []
        declared = _route_query_params(request)
        allowed_text = ", ".join(sorted(known)) or "none"
        for name in request.query_params:
            if name not in known and name not in declared:
                errors.append(
                    _error(name, f"not a filter here; allowed: {allowed_text}", "filter_not_allowed")
                )
        filters: dict[str, Any] = {}
        for name, param in params.items():
            value = raw.get(name)
            if value is None:
                continue
            if param.op not in _LIST_OPS and len(request.query_params.getlist(name)) > 1:
                errors.append(_error(name, "given more than once", "filter_repeated"))
                continue
            try:
                checked = param.adapter.validate_python(value)
                build_filters(model, {param.key: checked})
            except (ValidationError, InvalidInputError) as exc:
                errors.append(_error(name, _reason(exc), "filter_value"))
                continue
            filters[param.key] = checked
        order = _order(raw.get(ORDER_PARAM), sortable, order_choices, errors)
        if errors:
            raise RequestValidationError(errors)
        return Filter(Q(**filters), order)

    signature = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)]
    for name, param in params.items():
        signature.append(_declared(name, param, model))
    if sortable:
        schema = {
            "type": "string",
            "description": f"comma-separated; each one of: {', '.join(order_choices)}",
        }
        annotation = Annotated[str | None, WithJsonSchema(schema), Query(description=schema["description"])]
        signature.append(
            inspect.Parameter(
                ORDER_PARAM, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
            )
        )
    dependency.__signature__ = inspect.Signature(signature)  # type: ignore[attr-defined]
    dependency.__name__ = f"filter_{getattr(model, '__name__', 'model')}"
    return dependency


def _declared(name: str, param: _Param, model: Any) -> inspect.Parameter:
    """The query parameter as FastAPI sees it: raw text (checked by the dependency), typed in OpenAPI."""
    schema = param.adapter.json_schema()
    description = f"{param.op} filter on {param.key.rsplit('__', 1)[0]}"
    raw_type: Any = list[str] | None if param.op in _LIST_OPS else str | None
    annotation = Annotated[raw_type, WithJsonSchema(schema), Query(description=description)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)


def _order(
    value: str | None, sortable: list[str], choices: list[str], errors: list[dict[str, Any]]
) -> list[str] | None:
    if not value:
        return None
    items = [item.strip() for item in value.split(",")]
    if any(item.lstrip("-") not in sortable or item.count("-") > 1 for item in items):
        errors.append(
            _error(ORDER_PARAM, f"each item must be one of: {', '.join(choices)}", "order_not_allowed")
        )
        return None
    return items


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        # pydantic's own messages name the expected type; the "input" entry (the value) is not read
        return "; ".join(str(e.get("msg", "invalid value")) for e in exc.errors())[:200]
    return str(exc)[:200]


def _error(name: str, msg: str, kind: str) -> dict[str, Any]:
    return {"type": kind, "loc": ("query", name), "msg": msg}


def _route_query_params(request: Request) -> set[str]:
    """The query parameters the matched route declares itself (``limit``, ``after``, ...)."""
    route = request.scope.get("route")
    names: set[str] = set()
    pending = [getattr(route, "dependant", None)]
    while pending:
        dependant = pending.pop()
        if dependant is None:
            continue
        names.update(getattr(field, "alias", "") for field in getattr(dependant, "query_params", ()))
        pending.extend(getattr(dependant, "dependencies", ()))
    return names
