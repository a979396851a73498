"""A Tortoise engine module: Tortoise's own MySQL client, on aiomysql even when asyncmy is installed.

Tortoise's MySQL backend (``tortoise.backends.mysql``) imports asyncmy when it is installed and
falls back to aiomysql otherwise (its extras ``tortoise-orm[asyncmy]`` / ``[aiomysql]``); the
choice is made once, when the module is imported. To measure both drivers in one process, this
module loads a second copy of that client module with asyncmy hidden, so it takes its aiomysql
branch, and offers it as ``client_class`` (the attribute Tortoise reads from an ``engine`` module).
The code that runs is Tortoise's, unchanged.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

_SOURCE = "tortoise.backends.mysql.client"
_COPY = "benchmarks._tortoise_mysql_client_aiomysql"


def _load_on_aiomysql() -> Any:
    found = importlib.util.find_spec(_SOURCE)
    if found is None or found.origin is None:  # pragma: no cover - Tortoise not installed
        raise ImportError(_SOURCE)
    spec = importlib.util.spec_from_file_location(_COPY, found.origin)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    hidden = {name: sys.modules.get(name) for name in ("asyncmy",)}
    sys.modules["asyncmy"] = None  # type: ignore[assignment]  # `import asyncmy` raises ImportError
    try:
        spec.loader.exec_module(module)
    finally:
        for name, previous in hidden.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    if module.mysql.__name__ != "aiomysql":  # pragma: no cover - Tortoise changed how it picks
        raise ImportError(f"{_SOURCE} did not fall back to aiomysql")
    sys.modules[_COPY] = module
    return module.MySQLClient


client_class = _load_on_aiomysql()
