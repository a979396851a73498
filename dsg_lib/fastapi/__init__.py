"""FastAPI integration (extra ``[fastapi]``): lifespan, per-request transactions, error handlers.

Examples:
    >>> from fastapi import Depends, FastAPI
    >>> from dsg_lib import AsyncDatabase, DBConfig
    >>> from dsg_lib.fastapi import lifespan, register_exception_handlers, session_dependency
    >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
    >>> app = FastAPI(lifespan=lifespan(db, create_tables=True))
    >>> register_exception_handlers(app)
    >>> @app.get("/ping")
    ... async def ping(session=Depends(session_dependency(db))):
    ...     return {"ok": True}
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from ..database import AsyncDatabase
from ..errors import (
    ConstraintViolationError,
    DatabaseError,
    DatabaseUnavailableError,
    InvalidInputError,
    MissingDependencyError,
    RecordNotFoundError,
    StaleRecordError,
    TransactionConflictError,
)
from ..routing import PRIMARY_TOKEN, WriteTracker, parse_token
from ..session import transaction as _transaction

try:
    from fastapi import APIRouter, FastAPI, Request
    from fastapi.exceptions import RequestValidationError

    # Response at module level: FastAPI resolves an endpoint's return annotation (a string under
    # ``from __future__ import annotations``) in the module's globals only; FastAPI 0.110 and 0.115
    # cannot see a name imported inside the function that defines the endpoint (metrics_router)
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        'dsg_lib.fastapi needs FastAPI; install it with: pip install "dsg-lib[fastapi]"'
    ) from exc

from ._filters import Filter, filter_query

__all__ = [
    "CONSISTENCY_HEADER",
    "ERROR_RESPONSES",
    "PROBLEM_RESPONSES",
    "ConsistencyMiddleware",
    "DBSessionMiddleware",
    "ErrorBody",
    "Filter",
    "ProblemBody",
    "error_response",
    "expected_version",
    "filter_query",
    "health_router",
    "lifespan",
    "metrics_router",
    "register_exception_handlers",
    "session_dependency",
    "status_for",
    "validation_problem",
    "version_etag",
]

#: HTTP status per error class; the first match in the class's MRO wins.
STATUS_BY_ERROR: dict[type[DatabaseError], int] = {
    RecordNotFoundError: 404,
    ConstraintViolationError: 409,
    # optimistic locking: the row moved on since the client read it (412 when it sent If-Match)
    StaleRecordError: 409,
    InvalidInputError: 422,
    DatabaseUnavailableError: 503,
    # A deadlock / serialization failure: the same request can succeed when sent again.
    # 503 + Retry-After, not 409: 409 already means "constraint violated, do not resend",
    # and HTTP clients' retry logic honours Retry-After on 503.
    TransactionConflictError: 503,
    DatabaseError: 500,
}
#: constraint kinds that are the client's input (a missing referenced row, a NULL for a required
#: field), not a conflict with the current state: 422, like FastAPI's own validation errors
INPUT_CONSTRAINT_KINDS = frozenset({"foreign_key", "not_null"})
RETRY_AFTER_SECONDS = 5
#: a conflict clears as soon as the other transaction ends: retry quickly
CONFLICT_RETRY_AFTER_SECONDS = 1


def lifespan(
    db: AsyncDatabase, create_tables: bool = False, *, connect_timeout: float = 30.0
) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A FastAPI ``lifespan``: wait for the database, optionally create tables, disconnect at shutdown.

    Args:
        db: The database.
        create_tables: Run ``db.create_tables()`` at startup.
        connect_timeout: Seconds to wait for the database at startup.

    Examples:
        >>> from fastapi import FastAPI
        >>> from dsg_lib import AsyncDatabase, DBConfig
        >>> app = FastAPI(lifespan=lifespan(AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))))
    """

    @asynccontextmanager
    async def _lifespan(app: Any) -> AsyncIterator[None]:
        await db.connect(timeout=connect_timeout)
        if create_tables:
            await db.create_tables()
        try:
            yield
        finally:
            await db.disconnect()

    return _lifespan


def session_dependency(db: AsyncDatabase) -> Callable[..., AsyncIterator[AsyncSession]]:
    """A dependency yielding a session in one transaction per request.

    The transaction commits after the endpoint returns and before the
    response is sent (so a failing commit becomes an error response, not a
    lost write); it rolls back if the endpoint raises (``HTTPException``
    included). ``DatabaseOperations`` calls in the endpoint join it.

    Examples:
        >>> from fastapi import Depends
        >>> from dsg_lib import AsyncDatabase, DBConfig
        >>> get_session = session_dependency(AsyncDatabase(DBConfig({"database_uri": "sqlite://"})))
        >>> # async def create(item: Item, session: AsyncSession = Depends(get_session)): ...
    """

    async def _session(request: Request) -> AsyncIterator[AsyncSession]:
        stack = request.scope.get("fastapi_function_astack")
        if isinstance(stack, AsyncExitStack):
            # Close with the endpoint's own exit stack: before the response is sent,
            # whatever ``Depends(scope=...)`` the caller chose.
            yield await stack.enter_async_context(db.transaction())
            return
        async with db.transaction() as session:  # pragma: no cover - older FastAPI
            yield session

    return _session


class ErrorBody(BaseModel):
    """The JSON body of an error response (``{"error", "details"}``, plus the constraint fields).

    ``kind``, ``columns`` and ``constraint`` are set for a
    ``ConstraintViolationError`` only, with the same shape on every backend:
    ``columns`` lists the fields involved when the database names them, and
    ``constraint`` the constraint's name when it has one. Never values.

    Examples:
        >>> ErrorBody(error="RecordNotFoundError", details="no user 7").error
        'RecordNotFoundError'
    """

    error: str
    details: str
    kind: str | None = None
    columns: list[str] | None = None
    constraint: str | None = None


class ProblemBody(BaseModel):
    """An RFC 9457 problem details body (``application/problem+json``), see `register_exception_handlers`.

    ``errors`` lists FastAPI's validation errors (``loc``, ``msg``, ``type``,
    without the input values); ``error``, ``kind``, ``columns`` and
    ``constraint`` are set for ``dsg_lib`` errors.

    Examples:
        >>> ProblemBody(title="Not Found", status=404, detail="no user 7").type
        'about:blank'
    """

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    error: str | None = None
    kind: str | None = None
    columns: list[str] | None = None
    constraint: str | None = None
    errors: list[dict[str, Any]] | None = None


def _responses(model: type[BaseModel], media_type: str) -> dict[int | str, dict[str, Any]]:
    described = {
        404: "Not found (RecordNotFoundError)",
        409: "Conflict with the current state: a unique or check constraint (ConstraintViolationError)",
        422: "Invalid input: validation, a missing referenced row or a required field set to null",
        503: "Database unavailable or a concurrent conflict; retry after Retry-After seconds",
    }
    # "model" registers the schema (FastAPI puts it under application/json); "content" names the real type
    schema = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    return {
        status: {"model": model, "description": text, "content": {media_type: schema}}
        for status, text in described.items()
    }


#: ``responses=`` for routes using the database: 404, 409, 422 and 503 with their bodies in OpenAPI.
#: ``@app.post("/users", responses=ERROR_RESPONSES)`` (or ``APIRouter(responses=ERROR_RESPONSES)``).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = _responses(ErrorBody, "application/json")
#: the same for an app using ``register_exception_handlers(app, problem_details=True)``
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = _responses(ProblemBody, "application/problem+json")

_TITLES = {
    404: "Not Found",
    409: "Conflict",
    412: "Precondition Failed",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_CONSTRAINT_TEXT = {
    "unique": "a row with the same value already exists",
    "foreign_key": "the referenced row does not exist, or the row is still referenced",
    "not_null": "a required field is null",
    "check": "a check constraint rejected the value",
    "unknown": "a constraint rejected the change",
}


def status_for(exc: DatabaseError) -> int:
    """The HTTP status for ``exc`` (see `register_exception_handlers`).

    Examples:
        >>> from dsg_lib import ConstraintViolationError
        >>> status_for(ConstraintViolationError("dup", kind="unique"))
        409
        >>> status_for(ConstraintViolationError("no parent", kind="foreign_key", columns=["user_id"]))
        422
    """
    if isinstance(exc, ConstraintViolationError) and exc.kind in INPUT_CONSTRAINT_KINDS:
        return 422
    return next(
        (code for cls in type(exc).__mro__ for err, code in STATUS_BY_ERROR.items() if cls is err), 500
    )


def _constraint_fields(exc: ConstraintViolationError) -> dict[str, Any]:
    """``kind``, ``columns`` and ``constraint``, the same shape on every backend.

    SQLite reports ``table.column`` where the others report a constraint name:
    that is a column list, not a name, so ``constraint`` is ``None`` there.
    """
    named = exc.constraint
    if named is not None:
        as_columns = tuple(part.strip().rsplit(".", 1)[-1] for part in named.split(","))
        if exc.columns and as_columns == exc.columns:
            named = None
    return {"kind": exc.kind, "columns": list(exc.columns), "constraint": named}


def _constraint_details(exc: ConstraintViolationError) -> str:
    text = _CONSTRAINT_TEXT.get(exc.kind, _CONSTRAINT_TEXT["unknown"])
    return f"{text} ({', '.join(exc.columns)})" if exc.columns else text


def error_response(
    exc: DatabaseError, *, problem_details: bool = False, if_match: bool = False
) -> JSONResponse:
    """The JSON response for a ``DatabaseError``: ``{"error", "details"}`` and its status.

    Server-side failures (5xx) carry a generic message; the real one is logged.
    Only what can succeed when sent again gets ``Retry-After``: an unavailable
    database (503, 5 s) and a transaction conflict such as a deadlock (503, 1 s).
    A ``ConstraintViolationError`` adds ``kind``, ``columns`` and ``constraint``
    (see `ErrorBody`), with a message that is the same on every backend.

    Args:
        exc: The error.
        problem_details: Answer with RFC 9457 problem details
            (``application/problem+json``, see `ProblemBody`).
        if_match: The request carried ``If-Match``: a `StaleRecordError`
            is then 412 Precondition Failed instead of 409.

    Examples:
        >>> from dsg_lib import RecordNotFoundError
        >>> error_response(RecordNotFoundError("no user 7")).status_code
        404
        >>> error_response(RecordNotFoundError("no user 7"), problem_details=True).media_type
        'application/problem+json'
    """
    status = 412 if if_match and isinstance(exc, StaleRecordError) else status_for(exc)
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if isinstance(exc, TransactionConflictError):
        details = "the request conflicted with a concurrent one and was rolled back; retry it"
        headers = {"Retry-After": str(CONFLICT_RETRY_AFTER_SECONDS)}
    elif status == 503:
        details = "the database is unavailable; retry later"
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    elif status >= 500:
        details = "internal database error"
    elif isinstance(exc, ConstraintViolationError):
        details = _constraint_details(exc)
        extra = _constraint_fields(exc)
    else:
        details = exc.details
    if status >= 500:
        # a conflict is expected under load and answered as retryable: not an error of the service
        level = "WARNING" if isinstance(exc, TransactionConflictError) else "ERROR"
        logger.log(level, "dsg_lib: {} -> HTTP {}: {}", type(exc).__name__, status, exc.details)
    name = type(exc).__name__
    if problem_details:
        problem = {"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status}
        body = {**problem, "detail": details, "error": name, **extra}
        return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")
    return JSONResponse({"error": name, "details": details, **extra}, status_code=status, headers=headers)


def validation_problem(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's request validation errors as RFC 9457 problem details (422), without the input values.

    Examples:
        >>> err = RequestValidationError([{"loc": ("body", "title"), "msg": "Field required",
        ...                               "type": "missing", "input": {"secret": 1}}])
        >>> response = validation_problem(err)
        >>> (response.status_code, b"secret" in response.body)
        (422, False)
    """
    errors = [
        {"loc": list(item.get("loc", ())), "msg": str(item.get("msg", "")), "type": str(item.get("type", ""))}
        for item in exc.errors()
    ]
    fields = sorted({str(e["loc"][-1]) for e in errors if e["loc"]})
    body = {
        "type": "about:blank",
        "title": _TITLES[422],
        "status": 422,
        "detail": "request validation failed" + (f" ({', '.join(fields)})" if fields else ""),
        "errors": errors,
    }
    return JSONResponse(body, status_code=422, media_type="application/problem+json")


def register_exception_handlers(app: FastAPI, *, problem_details: bool = False) -> None:
    """Map ``dsg_lib`` errors to HTTP: not found 404, conflict 409, invalid input 422, unavailable 503.

    - ``RecordNotFoundError`` -> 404.
    - ``ConstraintViolationError``: a unique or check constraint (a conflict
      with the current state) -> 409; a missing referenced row (foreign key)
      or a NULL for a required field -> 422, like a validation error. Both
      carry ``kind``, ``columns`` (the fields, when the database names them)
      and ``constraint`` (its name, when it has one), the same shape on every
      backend, never values.
    - ``StaleRecordError`` (optimistic locking) -> 409, or 412 when the
      request sent ``If-Match``.
    - ``InvalidInputError`` -> 422.
    - ``DatabaseUnavailableError`` -> 503 with ``Retry-After: 5``; a
      ``TransactionConflictError`` (deadlock, serialization failure) -> 503
      with ``Retry-After: 1``: the request was rolled back and may be resent.
    - Any other ``DatabaseError`` -> 500 with a generic message (logged).

    Bodies are ``{"error", "details"}`` JSON (`ErrorBody`) with no SQL,
    values or secrets in them. Document them in OpenAPI with
    ``responses=ERROR_RESPONSES``.

    Args:
        app: The FastAPI app.
        problem_details: Answer with RFC 9457 problem details
            (``application/problem+json``, `ProblemBody`) instead, for
            ``dsg_lib`` errors and FastAPI's request validation errors alike
            (one body shape for clients; use ``PROBLEM_RESPONSES``).

    Examples:
        >>> from fastapi import FastAPI
        >>> app = FastAPI()
        >>> register_exception_handlers(app)
        >>> register_exception_handlers(FastAPI(), problem_details=True)
    """

    async def _handler(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DatabaseError)
        if_match = "if-match" in request.headers
        return error_response(exc, problem_details=problem_details, if_match=if_match)

    app.add_exception_handler(DatabaseError, _handler)
    if problem_details:

        async def _validation(request: Request, exc: Exception) -> JSONResponse:
            assert isinstance(exc, RequestValidationError)
            return validation_problem(exc)

        app.add_exception_handler(RequestValidationError, _validation)


def version_etag(obj: Any) -> str:
    """The ``ETag`` of a versioned ORM object: its ``version_id_col`` value, quoted.

    Send it with a read; the client sends it back as ``If-Match`` with its
    update, and `expected_version` turns that into ``expected_version=``.

    Raises:
        InvalidInputError: the object's model has no ``version_id_col``.

    Examples:
        >>> from sqlalchemy import Integer
        >>> from sqlalchemy.orm import DeclarativeBase, mapped_column
        >>> class B(DeclarativeBase):
        ...     pass
        >>> class Doc(B):
        ...     __tablename__ = "doc"
        ...     id = mapped_column(Integer, primary_key=True)
        ...     version = mapped_column(Integer, nullable=False)
        ...     __mapper_args__ = {"version_id_col": version}
        >>> version_etag(Doc(id=1, version=3))
        '"3"'
    """
    from sqlalchemy import inspect as sa_inspect

    from ..operations import version_attribute

    mapper = sa_inspect(type(obj), raiseerr=False)
    if mapper is None:
        raise InvalidInputError(f"version_etag takes an ORM object, got {type(obj).__name__}")
    return f'"{getattr(obj, version_attribute(mapper, type(obj).__name__))}"'


def expected_version(if_match: str | None) -> int | None:
    """The version named by an ``If-Match`` header (``"3"`` or ``W/"3"``); ``None`` without one.

    Raises:
        InvalidInputError: the header is not one quoted integer version (HTTP 422).

    Examples:
        >>> expected_version('"3"'), expected_version('W/"3"'), expected_version(None)
        (3, 3, None)
        >>> expected_version("*")
        Traceback (most recent call last):
        ...
        dsg_lib.errors.InvalidInputError: If-Match must be one version ETag such as "3"
    """
    if if_match is None:
        return None
    tag = if_match.strip().removeprefix("W/")
    inner = tag[1:-1] if len(tag) >= 2 and tag[0] == tag[-1] == '"' else ""
    if not (inner.isascii() and inner.isdigit()) or len(inner) > 18:
        raise InvalidInputError('If-Match must be one version ETag such as "3"')
    return int(inner)


def health_router(db: AsyncDatabase, path: str = "/health") -> APIRouter:
    """A router with ``GET path`` returning ``db.health_check()`` (HTTP 503 when not ok).

    Examples:
        >>> from dsg_lib import AsyncDatabase, DBConfig
        >>> router = health_router(AsyncDatabase(DBConfig({"database_uri": "sqlite://"})))
        >>> [r.path for r in router.routes]
        ['/health']
    """
    router = APIRouter()

    @router.get(path)
    async def _health() -> JSONResponse:
        report = await db.health_check()
        return JSONResponse(report, status_code=200 if report["ok"] else 503)

    _outside_transaction(path)
    return router


def metrics_router(db: Any, path: str = "/metrics", *, registry: Any = None) -> APIRouter:
    """A router with ``GET path`` serving Prometheus metrics (text format); needs ``prometheus-client``.

    Without ``registry`` it serves a private registry holding only
    ``PrometheusCollector(db)`` (``db``: a database or a mapping name ->
    database); with one, it serves that registry (register the collector in
    it yourself). Request spans: each request's ``transaction()`` (from
    `DBSessionMiddleware` or `session_dependency`) is a ``dsg_lib.transaction``
    span under the server span, once ``dsg_lib.observability.instrument(db)`` ran.

    Examples:
        >>> from dsg_lib import AsyncDatabase, DBConfig
        >>> router = metrics_router(AsyncDatabase(DBConfig({"database_uri": "sqlite://"})))
        >>> [r.path for r in router.routes]
        ['/metrics']
    """
    from ..observability import PrometheusCollector

    try:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    except ImportError as exc:  # pragma: no cover - exercised only without prometheus-client
        raise MissingDependencyError(
            'metrics_router needs prometheus-client; install it with: pip install "dsg-lib[prometheus]"'
        ) from exc

    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(PrometheusCollector(db))
    router = APIRouter()

    @router.get(path, include_in_schema=False)
    async def _metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    _outside_transaction(path)
    return router


#: paths of the routes `metrics_router` and `health_router` made: `DBSessionMiddleware` runs
#: them without a request transaction
_OUTSIDE_PATHS: set[str] = set()


def _outside_transaction(path: str) -> None:
    """Have `DBSessionMiddleware` run requests to ``path`` without a transaction.

    ``/metrics`` must answer while the database is down or the pool is
    exhausted (that is when its gauges matter), and ``/health`` reports the
    outage itself: neither may wait for, or fail on, a request transaction.
    """
    _OUTSIDE_PATHS.add(path)


class DBSessionMiddleware:
    """ASGI middleware: one transaction per HTTP request, reachable via ``db.current_session()``.

    Code that cannot take a dependency (services, repositories) calls
    ``db.current_session()``; ``DatabaseOperations`` calls join the request's
    transaction. It commits when the response is complete and before it is
    sent (for non-streaming responses; a failing commit becomes an error
    response), and rolls back when the app raises or answers with a 4xx/5xx
    status (e.g. an error turned into a response by an exception handler).
    A streaming response commits after its last chunk. The routes of
    `metrics_router` and `health_router` run without a transaction: they
    answer while the database is down or the pool is exhausted.

    The request's connection is checked out on its first statement (with
    the pre-ping and the atomicity guard of ``db.transaction()``), not when
    the request arrives, and kept for the rest of the request: a route that
    never uses the database takes no connection, so it answers while the
    database is down or the pool is exhausted.

    Args:
        app: The ASGI app.
        db: The database.
        problem_details: Answer a failing commit with RFC 9457 problem
            details, as ``register_exception_handlers(app, problem_details=True)``.

    Examples:
        >>> from fastapi import FastAPI
        >>> from dsg_lib import AsyncDatabase, DBConfig
        >>> app = FastAPI()
        >>> app.add_middleware(DBSessionMiddleware, db=AsyncDatabase(DBConfig({"database_uri": "sqlite://"})))
    """

    def __init__(self, app: Any, db: AsyncDatabase, *, problem_details: bool = False) -> None:
        self.app = app
        self.db = db
        self.problem_details = problem_details

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in _OUTSIDE_PATHS:
            await self.app(scope, receive, send)
            return
        held: list[dict[str, Any]] = []
        state = {"status": 200, "streaming": False, "sent": False}

        class _Rollback(Exception):
            """Roll back a request that answered with an error status without raising."""

            #: a 4xx/5xx answer is not a failed transaction (metrics and spans, see observability)
            dsg_lib_not_an_error = True

        async def send_after_commit(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                held.append(message)
                return
            if message["type"] == "http.response.body" and not state["streaming"]:
                held.append(message)
                if message.get("more_body", False):
                    # a streaming response: send what we have and stream the rest
                    state["streaming"] = True
                    await _flush()
                return
            await send(message)

        async def _flush() -> None:
            while held:
                await send(held.pop(0))
            state["sent"] = True

        try:
            # the connection is checked out on the request's first statement, not here:
            # routes that never use the database answer while it is down or its pool is full
            async with _transaction(self.db.acquire, lazy=True):
                await self.app(scope, receive, send_after_commit)
                if int(state["status"]) >= 400:
                    raise _Rollback()
        except _Rollback:
            pass
        except DatabaseError as exc:
            if state["sent"]:
                raise
            held.clear()
            response = error_response(exc, problem_details=self.problem_details)
            await response(scope, receive, send)
            return
        await _flush()


#: the response header carrying a consistency token, and the request header sending it back
CONSISTENCY_HEADER = "X-Consistency-Token"


class ConsistencyMiddleware:
    """ASGI middleware: read-your-writes across requests, through read replicas.

    After a request that committed a write on the primary, the response
    carries ``X-Consistency-Token`` (see `AsyncDatabase.consistency_token`).
    A request that sends the header back has every read made through ``db``
    served by a replica that has replayed that write, else by the primary
    (`AsyncDatabase.consistent_with`). A malformed token sends the reads to
    the primary. Add it after `DBSessionMiddleware` (so it wraps it and sees
    the request's commit).

    Args:
        app: The ASGI app.
        db: The database.
        header: The header name.

    Examples:
        >>> from fastapi import FastAPI
        >>> from dsg_lib import AsyncDatabase, DBConfig
        >>> app = FastAPI()
        >>> db = AsyncDatabase(DBConfig({"database_uri": "sqlite://"}))
        >>> app.add_middleware(ConsistencyMiddleware, db=db)
    """

    def __init__(self, app: Any, db: AsyncDatabase, header: str = CONSISTENCY_HEADER) -> None:
        self.app = app
        self.db = db
        self.header = header
        self._raw_header = header.lower().encode("latin-1")
        self._tracker = WriteTracker()

    def _request_token(self, scope: dict[str, Any]) -> str | None:
        for name, value in scope.get("headers", ()):
            if name == self._raw_header:
                token = bytes(value).decode("latin-1").strip()
                try:
                    parse_token(token)
                except DatabaseError:
                    logger.debug("dsg_lib: malformed {} header; reads go to the primary", self.header)
                    return PRIMARY_TOKEN
                return token or None
        return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self._tracker.attach(self.db.engine)

        with self._tracker.watch() as commits:

            async def send_with_token(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start" and commits and message["status"] < 400:
                    try:
                        token = await self.db.consistency_token()
                    except DatabaseError as exc:  # the write is done; only the token is missing
                        logger.warning("dsg_lib: no consistency token for this response: {}", exc.details)
                    else:
                        headers = list(message.get("headers", []))
                        headers.append((self._raw_header, token.encode("latin-1")))
                        message = {**message, "headers": headers}
                await send(message)

            async with self.db.consistent_with(self._request_token(scope)):
                await self.app(scope, receive, send_with_token)
