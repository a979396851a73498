"""``python -m benchmarks.service``: the same FastAPI app on four data layers, under ``wrk``.

Per backend: the tables are prepared, every app is started (``benchmarks.service.serve``, one
uvicorn worker each, on a free loopback port), each route of each app is checked once (status,
shape, and that /updates really wrote), warmed up, then loaded by ``wrk`` for ``--duration``
seconds in interleaved repeats (every route, every app, the app order rotated per repeat).
Requests/s and the p99 latency are recorded per repeat; the medians are reported, with the
ratios of dsg_lib's requests/s to the other apps'. Targets within ``--close-margin`` of their
line are rerun with ``--confirm-close`` repeats, and the rerun decides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..common import Backend, backends, server_version, sqla_engine
from . import report
from .schema import PATHS, ROUTES, check_response, numbers_of, prepare
from .serve import APPS

CLOSE_MARGIN = 0.10
SERVICE_BACKENDS = ("postgresql", "mariadb", "mariadb-asyncmy")


@dataclass(frozen=True)
class Target:
    """dsg_lib's requests/s divided by ``against``'s must be at least ``limit``."""

    against: str
    limit: float


TARGETS = (Target("raw", 0.9), Target("orm", 1.0), Target("tortoise", 1.0))


def log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Server:
    """One app served by uvicorn in a subprocess of its own."""

    def __init__(self, app: str, backend: Backend) -> None:
        self.app, self.backend = app, backend
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix=f"service-{app}-", suffix=".log", delete=False)  # noqa: SIM115
        cmd = [sys.executable, "-m", "benchmarks.service.serve", app, backend.name, str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self) -> str:
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as fh:
            lines = [line.strip() for line in fh if line.strip()]
        return lines[-1][:200] if lines else f"exit {self.proc.returncode}"

    def wait_ready(self, timeout: float) -> str | None:
        """None once the app answers; else why not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"the server stopped: {self.tail()}"
            try:
                status, _ = _get(self.base + "/fortunes", timeout=2.0)
                if status == 200:
                    return None
            except OSError:
                pass
            time.sleep(0.2)
        return f"no answer within {timeout:g}s"

    def drain(self) -> None:
        """Wait for the requests still queued from the last load (wrk leaves them behind when it
        stops) before the next app is loaded: one request, queued behind them, comes back."""
        try:
            _get(self.base + PATHS["db"], timeout=60.0)
        except OSError:
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.log.close()
        os.unlink(self.log.name)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/s, p99 latency (ms), requests, and failed responses from ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"(\d+) requests in", output)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if not rps or not p99 or not total:
        raise RuntimeError("unexpected wrk output: " + " ".join(output.split())[:200])
    return {
        "rps": float(rps.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "requests": int(total.group(1)),
        "failed": int(bad.group(1)) if bad else 0,
        "socket_errors": sum(int(g) for g in sockets.groups()) if sockets else 0,
    }


def wrk(url: str, duration: int, connections: int) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()[:200]}")
    return parse_wrk(proc.stdout)


class ServiceRun:
    """Everything measured on one backend."""

    def __init__(self, backend: Backend, apps: list[str], args: argparse.Namespace) -> None:
        self.backend, self.apps, self.args = backend, apps, args
        self.rps: dict[str, dict[str, list[float]]] = {}
        self.p99: dict[str, dict[str, list[float]]] = {}
        self.confirm_rps: dict[str, dict[str, list[float]]] = {}
        self.confirm_p99: dict[str, dict[str, list[float]]] = {}
        self.confirmed: list[list[str]] = []
        self.errors: dict[str, dict[str, str]] = {}
        self.server_version = "?"

    def _error(self, route: str, app: str, text: str) -> None:
        if app not in self.errors.setdefault(route, {}):
            log(f"    ! {route} / {app}: {text}")
        self.errors[route][app] = text[:200]

    async def _prepare(self) -> None:
        engine = sqla_engine(self.backend)
        try:
            await prepare(engine, self.backend)
            self.server_version = await server_version(engine, self.backend)
        finally:
            await engine.dispose()

    async def _stored(self, ids: list[int]) -> dict[int, int]:
        engine = sqla_engine(self.backend)
        try:
            return await numbers_of(engine, ids)
        finally:
            await engine.dispose()

    def _check(self, server: Server) -> None:
        """Every route answers as specified; /updates' numbers are the ones stored."""
        for route in ROUTES:
            try:
                status, body = _get(server.base + PATHS[route])
            except OSError as exc:
                self._error(route, server.app, f"{type(exc).__name__}: {exc}")
                continue
            problem = check_response(route, status, body)
            if problem is None and route == "updates":
                sent = {item["id"]: item["randomNumber"] for item in json.loads(body)}
                if asyncio.run(self._stored(list(sent))) != sent:
                    problem = "/updates answered numbers that are not the stored ones"
            if problem:
                self._error(route, server.app, problem)

    def run(self) -> None:
        b, a = self.backend, self.args
        log(f"[{b.name}] preparing the tables")
        asyncio.run(self._prepare())
        servers: dict[str, Server] = {}
        try:
            started = time.perf_counter()
            for app in self.apps:
                servers[app] = Server(app, b)
            for app, server in list(servers.items()):
                problem = server.wait_ready(a.start_timeout)
                if problem:
                    self._error("start", app, problem)
                    server.stop()
                    del servers[app]
            log(f"[{b.name}] {len(servers)} apps up in {time.perf_counter() - started:.1f}s")
            for server in servers.values():
                self._check(server)
            for app, server in servers.items():
                for _ in range(a.warmup):
                    for route in ROUTES:
                        if app not in self.errors.get(route, {}):
                            wrk(server.base + PATHS[route], 1, a.connections)
                            server.drain()
            self._repeats(servers, a.repeats, self.rps, self.p99, "repeat")
            close = self._close()
            if close:
                log(f"[{b.name}] close to their line, rerun x{a.confirm_close}: {', '.join(close)}")
                self._repeats(servers, a.confirm_close, self.confirm_rps, self.confirm_p99, "rerun", close)
        finally:
            for server in servers.values():
                server.stop()

    def _repeats(
        self,
        servers: dict[str, Server],
        repeats: int,
        rps: dict[str, dict[str, list[float]]],
        p99: dict[str, dict[str, list[float]]],
        what: str,
        only: dict[str, set[str]] | None = None,
    ) -> None:
        """Interleaved rounds: every route, every app (one at a time, the order rotated per round;
        ``--side-by-side``: all apps at once, one wrk each)."""
        apps = list(servers)
        for repeat in range(repeats):
            started = time.perf_counter()
            for route in ROUTES:
                shift = repeat % len(apps) if apps else 0
                order = [
                    app
                    for app in apps[shift:] + apps[:shift]
                    if (only is None or app in only.get(route, ())) and app not in self.errors.get(route, {})
                ]
                if self.args.side_by_side:
                    with ThreadPoolExecutor(max_workers=max(1, len(order))) as pool:
                        loads = list(
                            pool.map(self._load, [servers[app] for app in order], [route] * len(order))
                        )
                else:
                    loads = [self._load(servers[app], route) for app in order]
                for app, result in zip(order, loads, strict=True):
                    if result is not None:
                        rps.setdefault(route, {}).setdefault(app, []).append(result["rps"])
                        p99.setdefault(route, {}).setdefault(app, []).append(result["p99_ms"])
            took = time.perf_counter() - started
            log(f"[{self.backend.name}] {what} {repeat + 1}/{repeats} done in {took:.1f}s")

    def _load(self, server: Server, route: str) -> dict[str, Any] | None:
        """One wrk run against one app's route; None (and an error recorded) if it went wrong."""
        try:
            result = wrk(server.base + PATHS[route], self.args.duration, self.args.connections)
        except Exception as exc:
            self._error(route, server.app, f"{type(exc).__name__}: {exc}")
            return None
        finally:
            server.drain()
        if not result["requests"]:
            self._error(route, server.app, f"no request completed in {self.args.duration} s")
            return None
        if result["failed"] or result["socket_errors"]:
            text = f"{result['failed']} failed responses, {result['socket_errors']} socket errors"
            self._error(route, server.app, f"{text} of {result['requests']} requests")
            return None
        return result

    def _close(self) -> dict[str, set[str]]:
        if not self.args.confirm_close:
            return {}
        rerun: dict[str, set[str]] = {}
        for t in report.targets(self.summary(), [t.__dict__ for t in TARGETS]):
            if t["value"] is None or abs(t["value"] / t["target"] - 1.0) > self.args.close_margin:
                continue
            self.confirmed.append([t["route"], t["against"]])
            rerun.setdefault(t["route"], set()).update(("dsg_lib", t["against"]))
        return rerun

    def summary(self) -> dict[str, Any]:
        return {
            "backend": self.backend.name,
            "driver": self.backend.driver,
            "server_version": self.server_version,
            "median_rps": _medians(self.rps),
            "median_p99_ms": _medians(self.p99),
            "samples_rps": self.rps,
            "samples_p99_ms": self.p99,
            "confirm": {
                "repeats": self.args.confirm_close,
                "margin": self.args.close_margin,
                "targets": self.confirmed,
                "median_rps": _medians(self.confirm_rps),
                "samples_rps": self.confirm_rps,
                "median_p99_ms": _medians(self.confirm_p99),
            },
            "errors": self.errors,
        }


def _medians(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {r: {a: statistics.median(v) for a, v in apps.items() if v} for r, apps in samples.items()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.service",
        description="A FastAPI service on raw drivers, SQLAlchemy ORM, Tortoise ORM and dsg_lib, under wrk.",
    )
    parser.add_argument(
        "--backends", default="postgresql,mariadb", help="comma list of: " + ", ".join(SERVICE_BACKENDS)
    )
    parser.add_argument("--apps", default=",".join(APPS), help="comma list of: " + ", ".join(APPS))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI smoke test: 1 s per route, 1 repeat, 4 connections, the apps loaded side by side",
    )
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="load the apps at the same time (one wrk each): quick, but the apps compete for the CPUs,"
        " so the figures only show that everything runs (--quick sets it)",
    )
    parser.add_argument(
        "--duration", type=int, default=None, help="seconds of wrk per route and app (default 5)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default 5)")
    parser.add_argument(
        "--connections", type=int, default=None, help="wrk connections (default 16; --quick: 4)"
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="untimed 1 s wrk rounds per route and app (2)"
    )
    parser.add_argument(
        "--confirm-close",
        type=int,
        default=None,
        metavar="N",
        help="rerun every target within --close-margin of its line with N repeats (default 9; --quick: 0)",
    )
    parser.add_argument("--close-margin", type=float, default=CLOSE_MARGIN, help="default 0.1 (10%%)")
    parser.add_argument("--start-timeout", type=float, default=60.0, help="seconds an app may take to start")
    parser.add_argument("--out", default=None, help="directory for service.json, service.md and the chart")
    parser.add_argument(
        "--page",
        nargs="?",
        const="docs/performance.md",
        default=None,
        help="also regenerate the FastAPI service section of this docs page (default docs/performance.md)"
        " and its chart in --img-dir",
    )
    parser.add_argument("--img-dir", default=os.path.join("docs", "img"), help="where --page draws its chart")
    args = parser.parse_args(argv)
    args.duration = args.duration or (1 if args.quick else 5)
    args.connections = args.connections or (4 if args.quick else 16)
    args.side_by_side = args.side_by_side or args.quick
    args.repeats = args.repeats or (1 if args.quick else 5)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.quick else 2)
    if args.confirm_close is None:
        args.confirm_close = 0 if args.quick else 9
    return args


def _split(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return items


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    chosen = _split(args.backends, SERVICE_BACKENDS, "backend")
    apps = _split(args.apps, APPS, "app")
    started = time.perf_counter()
    runs: list[ServiceRun] = []
    for name in chosen:
        run = ServiceRun(backends()[name], apps, args)
        try:
            run.run()
        except Exception as exc:  # an unreachable server skips its backend, the rest still runs
            run._error("backend", "all", f"{type(exc).__name__}: {exc}")
        runs.append(run)
    results = report.build(
        [r.summary() for r in runs],
        apps=apps,
        args=args,
        target_lines=[t.__dict__ for t in TARGETS],
        elapsed=time.perf_counter() - started,
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    markdown = report.markdown(results)
    sys.stdout.write(markdown + "\n")
    if args.out:
        report.write(results, markdown, args.out)
        log(f"wrote {args.out}/service.json, service.md and the chart")
    if args.page:
        report.update_page(args.page, results, args.img_dir)
        log(f"updated the FastAPI service section of {args.page}")
    return 0
