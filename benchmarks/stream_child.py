"""Run a memory workload (``stream`` or ``insert_memory``) for one contender in a fresh process.

``python -m benchmarks.stream_child BACKEND CONTENDER [--workload W] [--quick]`` prints
``{"seconds", "rows", "rss_growth_mb", "baseline_mb"}``. The peak RSS is the
kernel's high-water mark (``VmHWM``), reset after imports and connecting so only
the workload's growth counts; without ``/proc`` it falls back to ``getrusage``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import time

from .common import FULL, QUICK, backends, create_write_table, sqla_engine
from .contenders import Ctx, make

MB = 1024 * 1024


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


async def _main(backend_name: str, contender_name: str, workload: str, quick: bool) -> dict[str, float]:
    sizes = QUICK if quick else FULL
    backend = backends()[backend_name]
    contender = make(contender_name, backend, sizes)
    expected = sizes.stream_rows if workload == "stream" else sizes.memory_rows
    if workload == "insert_memory":  # start from an empty write table
        admin = sqla_engine(backend)
        try:
            await create_write_table(admin, contender.write_table)
        finally:
            await admin.dispose()
    await contender.open()
    try:
        gc.collect()
        exact = _reset_peak()
        baseline_kb = _status_kb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        rows = await contender.run(workload, Ctx(sizes=sizes))
        seconds = time.perf_counter() - start
        peak_kb = _status_kb("VmHWM") if exact else None
        peak_kb = peak_kb or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    finally:
        await contender.close()
    if rows != expected:
        raise SystemExit(f"{workload}: {rows} rows, expected {expected}")
    return {
        "seconds": seconds,
        "rows": rows,
        "rss_growth_mb": max(peak_kb - baseline_kb, 0) * 1024 / MB,
        "baseline_mb": baseline_kb * 1024 / MB,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stream_child")
    parser.add_argument("backend")
    parser.add_argument("contender")
    parser.add_argument("--workload", choices=("stream", "insert_memory"), default="stream")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    from loguru import logger

    logger.remove()  # a production-like sink: warnings and up (debug calls still pay their level check)
    logger.add(sys.stderr, level="WARNING")
    result = asyncio.run(_main(args.backend, args.contender, args.workload, args.quick))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
