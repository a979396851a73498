"""OpenTelemetry spans for operations and transactions (private; imported only when tracing is on).

Attributes follow OpenTelemetry's database semantic conventions: system,
namespace, server address/port, operation name, collection (table), rows,
``error.type``. Never SQL parameters, never credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .._version import __version__
from ..config import DBConfig
from ._metrics import error_name


def _system(db_config: DBConfig) -> str:
    """``db.system.name``: ``mariadb`` when the server says so (the dialect is ``mysql`` for both)."""
    return db_config.backend.system_name(db_config.engine.dialect)


def _server(db_config: DBConfig) -> dict[str, Any]:
    """``server.address`` / ``server.port``: the host in use of a multi-host URI, else the URL's."""
    nodes = db_config.nodes
    if nodes is not None:
        node = nodes.current or nodes.nodes[0]
        return {"server.address": node.host, "server.port": node.port or db_config.backend.default_port}
    url = db_config.url
    attributes: dict[str, Any] = {}
    if url.host:
        attributes["server.address"] = url.host
    if url.port:
        attributes["server.port"] = url.port
    return attributes


def base_attributes(db_config: DBConfig) -> dict[str, Any]:
    url = db_config.url
    attributes: dict[str, Any] = {}
    if url.database and not db_config.is_memory:
        attributes["db.namespace"] = url.database
    attributes.update(_server(db_config))
    return attributes


class Tracer:
    """Starts ``dsg_lib.*`` CLIENT spans for one database, nested under the caller's current span."""

    def __init__(self, db_config: DBConfig, tracer_provider: Any = None) -> None:
        self._tracer = trace.get_tracer("dsg_lib", __version__, tracer_provider=tracer_provider)
        self._config = db_config
        self._base = base_attributes(db_config)

    @contextmanager
    def span(
        self, operation: str, attributes: dict[str, Any] | None = None, *, current: bool = True
    ) -> Iterator[Span]:
        """A CLIENT span; ``current=False`` for a stream, whose caller runs between its items."""
        system = _system(self._config)
        attrs = {"db.system.name": system, "db.system": system, **self._base, "db.operation.name": operation}
        if self._config.nodes is not None:
            attrs.update(_server(self._config))
        if attributes:
            attrs.update(attributes)
        span = self._tracer.start_span(f"dsg_lib.{operation}", kind=SpanKind.CLIENT, attributes=attrs)
        try:
            if current:
                # the exception message could name a value: record the class only (below)
                with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                    yield span
            else:
                yield span
        except BaseException as exc:
            name = error_name(exc)
            if name is not None:
                span.set_attribute("error.type", name)
                span.set_status(Status(StatusCode.ERROR, name))
            raise
        finally:
            # the first connection of an engine tells MariaDB from MySQL; a multi-host URI
            # may have moved to another host: the span says where it actually ran
            known = _system(self._config)
            if known != system:
                span.set_attributes({"db.system.name": known, "db.system": known})
            if self._config.nodes is not None:
                span.set_attributes(_server(self._config))
            span.end()
