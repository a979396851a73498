"""Engines: construction, one pool per event loop, hosts, replicas (internal).

- ``_build``: ``create_async_engine`` with the backend's defaults and hooks,
  the pre-ping usage clock and the slow-query log;
- ``_pool_per_loop``: `Endpoint`, one server's engine with a pool per event loop;
- ``_hosts``: multi-host URIs and failover between the hosts of one database;
- ``_replicas``: read replicas, handed out round robin, skipped while down.

This package is internal: the rest of dsg_lib imports these names from here.
"""

from ._build import DEFAULT_PRE_PING_WINDOW_MS, build_engine
from ._hosts import Node, NodeSet, install_sync_wait, split_hosts
from ._hosts import install as install_hosts
from ._pool_per_loop import Endpoint
from ._replicas import Replica, ReplicaSet

__all__ = [
    "DEFAULT_PRE_PING_WINDOW_MS",
    "Endpoint",
    "Node",
    "NodeSet",
    "Replica",
    "ReplicaSet",
    "build_engine",
    "install_hosts",
    "install_sync_wait",
    "split_hosts",
]
