"""High-availability tests on real engines started by the project's scripts.

They start, fail over and kill database servers, so they run only when
selected: ``pytest -m ha`` (CI runs them as a separate step). Each topology
is started by its idempotent script (as root):

- ``scripts/pg_auto_failover.sh start``: monitor :5441, nodes :5442/:5443
- ``scripts/galera.sh start``: MariaDB Galera nodes :3311-:3313
- ``scripts/patroni.sh start``: etcd :2479, Patroni nodes :5451-:5453, HAProxy :5450
- ``scripts/scaleout_setup.sh``: the streaming replica :5433 of :5432
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import IN_CI

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "ha" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="HA tests start and kill database servers; run them with -m ha")
    for item in items:
        if "ha" in item.keywords and item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(skip)


def run_script(name: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/<name>`` with ``args`` (blocking; for fixtures)."""
    return subprocess.run(
        ["bash", str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


async def run_script_async(name: str, *args: str, timeout: float = 120) -> tuple[int, str]:
    """Run a script without blocking the event loop; returns (exit code, stderr tail)."""
    proc = await asyncio.create_subprocess_exec(
        "bash",
        str(SCRIPTS / name),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, (out + err).decode(errors="replace")[-2000:]


def ensure_topology(name: str, *args: str) -> None:
    """Start a topology with its script; skip (fail under CI) when it cannot start here."""
    started = time.monotonic()
    result = run_script(name, *args)
    if result.returncode != 0:
        message = f"{name} {' '.join(args)} failed: {result.stderr[-2000:]}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(reason=message)
    print(f"\n[ha] {name} {' '.join(args)}: ready in {time.monotonic() - started:.1f}s")


def report(line: str) -> None:
    """Print a measured number (visible with -s, and in CI logs)."""
    print(f"\n[ha] {line}", flush=True)
