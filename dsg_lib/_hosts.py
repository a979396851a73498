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

import re
import time
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from ._error_codes import PG_FAILOVER, PG_NO_WRITABLE_HOST
from ._listeners import own
from .errors import ConfigurationError

#: seconds a node that failed is skipped before it is tried again
RETRY_AFTER_SECONDS = 5.0

#: the ``target_session_attrs`` that ask for the writable host
_PG_WRITABLE = ("read-write", "primary")
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
        return f"{self.host}:{self.port}" if self.port else self.host

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

    A URI without a comma in its host part is returned unchanged with ``[]``.
    """
    if not isinstance(uri, str):
        return uri, []
    match = _AUTHORITY.match(uri.strip())
    if match is None or "," not in match["authority"]:
        return uri, []
    userinfo, _, hostlist = match["authority"].rpartition("@")
    nodes = [_parse_host(part) for part in hostlist.split(",")]
    first = f"{userinfo}@{nodes[0].label}" if userinfo else nodes[0].label
    return f"{match['scheme']}{first}{match['rest']}", nodes


def _parse_host(part: str) -> Node:
    part = part.strip()
    host, sep, port = part.rpartition(":") if not part.endswith("]") else (part, "", "")
    if not sep:
        host, port = part, ""
    host = host.strip("[]")
    if not host or (port and not port.isdigit()) or (port and not 0 < int(port) < 65536):
        raise ConfigurationError(
            "'database_uri' lists several hosts; each must be 'host' or 'host:port' "
            "(e.g. 'postgresql://h1:5432,h2:5432/db')"
        )
    return Node(host=host, port=int(port) if port else None)


def postgres_multihost(url: URL, nodes: list[Node]) -> URL:
    """The asyncpg dialect's multi-host URL: no host/port, one ``host=h:p`` per node."""
    hosts = tuple(f"{n.host}:{n.port or 5432}" for n in nodes)
    query = dict(url.query)
    query["host"] = hosts
    # URL.set() ignores None: build the URL again without host and port
    return URL.create(
        url.drivername,
        username=url.username,
        password=url.password,
        database=url.database,
        query=query,
    )


def install(engine: AsyncEngine, backend: str, nodes: list[Node]) -> NodeSet | None:
    """Hook ``engine`` so its pool fails over (between ``nodes``, if any); returns the MySQL `NodeSet`.

    PostgreSQL engines are hooked whatever their host count (see the module doc);
    MySQL / MariaDB ones only when the URI lists several nodes.
    """
    if backend == "postgresql":
        _install_pg_disconnects(engine)
        if nodes:
            _install_pg_connect(engine, nodes)
        return None
    if not nodes or backend not in ("mysql", "mariadb"):
        return None
    nodeset = NodeSet(nodes)
    _install_node_connect(engine, nodeset)
    _install_mysql_disconnects(engine, nodeset)
    return nodeset


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


def _install_pg_connect(engine: AsyncEngine, nodes: list[Node]) -> None:
    """A failed connect that asked for the writable host says "no writable host", naming the hosts."""
    hosts = ", ".join(f"{n.host}:{n.port or 5432}" for n in nodes)

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            wanted = str(cparams.get("target_session_attrs") or "")
            chain = _chain(exc)
            none_matched = any(type(item).__name__ in PG_NO_WRITABLE_HOST for item in chain)
            refused = next((item for item in chain if isinstance(item, OSError)), None)
            if wanted not in _PG_WRITABLE or not (none_matched or refused is not None):
                raise  # e.g. a wrong password: asyncpg stops at the first host that says so
            detail = ""
            if refused is not None:
                detail = f"; the last refusal: {str(refused) or type(refused).__name__}"
            # the driver's error stays on __context__; its text is in the message
            raise NoWritableHostError(f"none of {hosts} accepts {wanted} sessions{detail}") from None


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


def _install_node_connect(engine: AsyncEngine, nodeset: NodeSet) -> None:
    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        last: BaseException | None = None
        for node in nodeset.order():
            params = dict(cparams, host=node.host, port=node.port or 3306)
            try:
                conn = dialect.connect(*cargs, **params)
            except Exception as exc:  # any driver error: try the next node
                nodeset.mark_down(node, type(exc).__name__)
                last = exc
                continue
            nodeset.mark_up(node)
            record.info["dsg_lib_node"] = node.label
            return conn
        assert last is not None  # nodes is never empty
        raise last


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
