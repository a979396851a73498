"""Multi-host URIs and failover between the hosts of one database (private).

``postgresql://h1:p1,h2:p2/db?target_session_attrs=read-write`` becomes the
asyncpg dialect's own multi-host form (``?host=h1:p1&host=h2:p2``): asyncpg
tries the hosts in order and keeps the one that satisfies
``target_session_attrs``. MySQL drivers take one host, so for
``mysql+aiomysql://user@h1:3311,h2:3312,h3:3313/db`` (MariaDB Galera) the pool
connects through `NodeSet`: the first node that answers, skipping nodes that
failed recently and trying them again after `RETRY_AFTER_SECONDS`.

Either way a connection that tells us its server is no longer usable (a
demoted PostgreSQL primary, a Galera node outside the primary component) is
treated as a disconnect, so SQLAlchemy drops it and the pool's older
connections instead of handing them out again. On PostgreSQL this holds for
single-host URIs too: behind a proxy (HAProxy routing to the Patroni leader,
PgBouncer, a cloud endpoint) one host is a whole cluster, and a read-only or
shutting-down server there is a failover in progress.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from .._own_listeners import own
from ..backends import Backend
from ..errors import ConfigurationError
from ..errors.codes import PG_FAILOVER, PG_NO_WRITABLE_HOST

#: seconds a node that failed is skipped before it is tried again
RETRY_AFTER_SECONDS = 5.0

# Galera: 1047 "WSREP has not yet prepared node for application use" (not in the
# primary component), 1180 a commit that could not be replicated.
_MY_GONE = {1047, 1180}

_AUTHORITY = re.compile(r"^(?P<scheme>[^:/?#]+://)(?P<authority>[^/?#]*)(?P<rest>.*)$", re.S)


class NoWritableHostError(ConnectionError):
    """No host of a multi-host PostgreSQL URI accepted a read-write session (while connecting).

    asyncpg tries every host; when none qualifies it raises the error of the
    last host that refused the connection, which alone reads as if the
    database were down while the others answered read-only (a standby being
    promoted). This error says what happened; it becomes a
    `DatabaseUnavailableError` ("no writable host").
    """


@dataclass
class Node:
    """One host of a multi-host URI and its health."""

    host: str
    port: int | None
    down_until: float = 0.0
    failures: int = 0

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host

    @property
    def healthy(self) -> bool:
        return time.monotonic() >= self.down_until


@dataclass
class NodeSet:
    """The nodes of a multi-primary cluster, in the order the user listed them."""

    nodes: list[Node]
    retry_after: float = RETRY_AFTER_SECONDS
    current: Node | None = field(default=None)

    def order(self) -> list[Node]:
        """Healthy nodes first (as listed), then the rest as a last resort."""
        healthy = [n for n in self.nodes if n.healthy]
        return healthy + [n for n in self.nodes if not n.healthy]

    def mark_down(self, node: Node, reason: str) -> None:
        was_healthy = node.healthy
        node.down_until = time.monotonic() + self.retry_after
        node.failures += 1
        if was_healthy:
            logger.warning(
                "dsg_lib: database node {} failed ({}); skipping it for {:.0f}s",
                node.label,
                reason,
                self.retry_after,
            )

    def mark_up(self, node: Node) -> None:
        if node.down_until:
            node.down_until = 0.0
            logger.info("dsg_lib: database node {} is back", node.label)
        if self.current is not node:
            if self.current is not None:
                logger.info("dsg_lib: new connections go to node {}", node.label)
            self.current = node

    def find(self, label: str | None) -> Node | None:
        return next((n for n in self.nodes if n.label == label), None)


def split_hosts(uri: Any) -> tuple[Any, list[Node]]:
    """Split ``scheme://user@h1:p1,h2:p2/db`` into a one-host URI and the host list.

    A URI without a comma in its host list is returned unchanged with ``[]``
    (a comma in the password does not make several hosts). IPv6 hosts are
    written in brackets: ``[::1]:5432,[::2]:5432``.

    Raises:
        ConfigurationError: an unencoded ``@`` before the host (the part after
            it would be taken for the host), or a malformed host list. The
            message never repeats the URI: it may hold the password.
    """
    if not isinstance(uri, str):
        return uri, []
    match = _AUTHORITY.match(uri.strip())
    if match is None:
        return uri, []
    if match["authority"].count("@") > 1:
        raise ConfigurationError(
            "'database_uri' has more than one '@' before the host: write '@' in a user name or "
            "password as %40 (urllib.parse.quote_plus encodes a whole password)"
        )
    userinfo, _, hostlist = match["authority"].rpartition("@")
    if "," not in hostlist:
        return uri, []
    nodes = [_parse_host(part) for part in hostlist.split(",")]
    first = f"{userinfo}@{nodes[0].label}" if userinfo else nodes[0].label
    return f"{match['scheme']}{first}{match['rest']}", nodes


def _parse_host(part: str) -> Node:
    part = part.strip()
    if part.startswith("["):  # IPv6: [addr] or [addr]:port
        host, _, after = part[1:].partition("]")
        port = after[1:] if after.startswith(":") else ("x" if after else "")
    else:
        host, _, port = part.partition(":")
        if ":" in port:  # an IPv6 address without brackets
            host, port = "", ""
    if not host or (port and not port.isdigit()) or (port and not 0 < int(port) < 65536):
        raise ConfigurationError(
            "'database_uri' lists several hosts; each must be 'host', 'host:port', '[ipv6]' or "
            "'[ipv6]:port' (e.g. 'postgresql://h1:5432,h2:5432/db')"
        )
    return Node(host=host, port=int(port) if port else None)


def install(
    engine: AsyncEngine, backend: Backend, nodes: list[Node], connect_timeout: float | None = None
) -> NodeSet | None:
    """Hook ``engine`` so each connect is bounded per host and its pool fails over; returns the `NodeSet`.

    PostgreSQL engines get the disconnect hook whatever their host count (see
    the module doc). On PostgreSQL and MySQL / MariaDB every connection
    attempt to one host (TCP, TLS, handshake, authentication) ends within
    ``connect_timeout`` seconds; with several hosts the next one is tried.

    Returns:
        The hosts' health (``None`` for a one-host URI).
    """
    if backend.driver_multi_host:
        _install_pg_disconnects(engine)
    if not backend.server:
        return None
    nodeset = NodeSet(nodes) if nodes else None
    _install_bounded_connect(engine, backend, nodeset, connect_timeout)
    if nodeset is not None and not backend.driver_multi_host:
        _install_mysql_disconnects(engine, nodeset)
    return nodeset


def bounded_connect(driver: str, label: str, timeout: float | None) -> Callable[..., Awaitable[Any]]:
    """The driver's own ``connect``, cancelled when it has not finished within ``timeout`` seconds.

    The MySQL drivers' ``connect_timeout`` covers the TCP connect only: a
    server (or proxy) that accepts and then never answers would hold the
    handshake for ever. SQLAlchemy's asyncio dialects take the coroutine
    function that opens a driver connection as ``async_creator_fn`` (the hook
    behind ``create_async_engine(async_creator=...)``); this one wraps the
    driver's public ``connect`` in ``asyncio.wait_for``.
    """
    connect = importlib.import_module(driver).connect

    async def _connect(*args: Any, **kwargs: Any) -> Any:
        if timeout is None:
            return await connect(*args, **kwargs)
        try:
            return await asyncio.wait_for(_await(connect(*args, **kwargs)), timeout)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError(
                f"{label} did not complete the connection within connect_timeout ({timeout:g}s)"
            ) from None

    return _connect


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _install_bounded_connect(
    engine: AsyncEngine, backend: Backend, nodeset: NodeSet | None, timeout: float | None
) -> None:
    driver = engine.dialect.driver
    default_port = backend.default_port

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        if nodeset is None:
            label = f"{cparams.get('host') or 'localhost'}:{cparams.get('port') or default_port}"
            return dialect.connect(
                *cargs, **cparams, async_creator_fn=bounded_connect(driver, label, timeout)
            )
        last: BaseException | None = None
        refused: BaseException | None = None  # a refusal or a timeout: named in the message
        for node in nodeset.order():
            label = f"{node.host}:{node.port or default_port}"
            params = dict(cparams, host=node.host, port=node.port or default_port)
            try:
                conn = dialect.connect(
                    *cargs, **params, async_creator_fn=bounded_connect(driver, label, timeout)
                )
            except Exception as exc:
                if not backend.connect_moves_on(exc):
                    raise
                nodeset.mark_down(node, type(exc).__name__)
                last = exc
                refused = next((i for i in _chain(exc) if isinstance(i, OSError)), None) or refused
                continue
            nodeset.mark_up(node)
            record.info["dsg_lib_node"] = node.label
            return conn
        assert last is not None  # nodes is never empty
        wanted = str(cparams.get("target_session_attrs") or "")
        if wanted in backend.writable_session_attrs:
            hosts = ", ".join(f"{n.host}:{n.port or default_port}" for n in nodeset.nodes)
            detail = ""
            if refused is not None:
                detail = f"; the last refusal: {str(refused) or type(refused).__name__}"
            # the text of the refusal is in the message; the driver's error is left out of
            # the chain (see dsg_lib.errors)
            raise NoWritableHostError(f"none of {hosts} accepts {wanted} sessions{detail}") from None
        raise last


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = getattr(exc, "orig", None) or exc.__cause__
    return seen


def _install_pg_disconnects(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "handle_error")
    @own
    def _on_error(context: Any) -> None:
        for item in _chain(context.original_exception):
            if getattr(item, "sqlstate", None) in PG_FAILOVER or type(item).__name__ in PG_NO_WRITABLE_HOST:
                # Drop this connection and every older one in the pool: they may all
                # point at the server that stopped being the primary.
                context.is_disconnect = True
                return


def _mysql_errno(exc: BaseException | None) -> int | None:
    for item in _chain(exc):
        if item.args and isinstance(item.args[0], int):
            return item.args[0]
    return None


def _install_mysql_disconnects(engine: AsyncEngine, nodeset: NodeSet) -> None:
    @event.listens_for(engine.sync_engine, "handle_error")
    @own
    def _on_error(context: Any) -> None:
        if _mysql_errno(context.original_exception) in _MY_GONE:
            context.is_disconnect = True
        if context.is_disconnect and context.connection is not None:
            node = nodeset.find(context.connection.info.get("dsg_lib_node"))
            if node is not None:
                nodeset.mark_down(node, f"{type(context.original_exception).__name__}")


def install_sync_wait(engine: AsyncEngine, level: int) -> None:
    """Galera causal reads: every new connection sets ``wsrep_sync_wait``.

    With ``1`` a read first waits until the node has applied every write the
    cluster had committed when the read started, so a read on any node sees
    a write committed on another one.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"SET SESSION wsrep_sync_wait = {int(level)}")
        finally:
            cursor.close()
