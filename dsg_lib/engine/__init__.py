"""Engines: construction with per-dialect defaults, one pool per event loop, hosts, replicas (internal).

- ``_build``: ``create_async_engine`` with the production defaults and the
  engine hooks (explicit BEGIN, transaction guard, SQLite pragmas, timeouts);
- ``_pool_per_loop``: `Endpoint`, one server's engine with a pool per event loop;
- ``_hosts``: multi-host URIs and failover between the hosts of one database;
- ``_replicas``: read replicas, handed out round robin, skipped while down.

This package is internal: the rest of dsg_lib imports these names from here.
"""

from ._build import (
    BEGIN_AGAIN,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MYSQL_RECYCLE,
    DEFAULT_PRE_PING_WINDOW_MS,
    GUARD,
    MemoryKeeper,
    autocommit_options,
    build_engine,
    is_memory_sqlite,
    snapshot_options,
)
from ._hosts import Node, NodeSet, install_sync_wait, postgres_multihost, split_hosts
from ._hosts import install as install_hosts
from ._pool_per_loop import Endpoint
from ._replicas import Replica, ReplicaSet

__all__ = [
    "BEGIN_AGAIN",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MYSQL_RECYCLE",
    "DEFAULT_PRE_PING_WINDOW_MS",
    "GUARD",
    "Endpoint",
    "MemoryKeeper",
    "Node",
    "NodeSet",
    "Replica",
    "ReplicaSet",
    "autocommit_options",
    "build_engine",
    "install_hosts",
    "install_sync_wait",
    "is_memory_sqlite",
    "postgres_multihost",
    "snapshot_options",
    "split_hosts",
]
