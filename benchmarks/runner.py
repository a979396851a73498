"""Orchestration: per backend, open every contender, run interleaved repeats, collect medians,
then rerun the targets that landed close to their line (``--confirm-close``)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from . import report
from .common import (
    FULL,
    QUICK,
    Backend,
    Sizes,
    backends,
    create_write_table,
    ensure_shared_tables,
    id_at,
    ids_of,
    reset_write_table,
    server_version,
    sqla_engine,
)
from .contenders import CONTENDERS, Contender, Ctx, available, make
from .related import ensure_related_tables, expected_rel_count, expected_rel_find


@dataclass(frozen=True)
class Target:
    """dsg_lib's time divided by ``against``'s must stay at or below ``limit``."""

    against: str  # a contender name
    limit: float
    dialects: tuple[str, ...] = ()  # the backends it applies to; empty: every backend


# issue 15's targets: ORM-object work beats the hand-written ORM, Core-shaped work matches Core,
# point operations stay close to the raw driver on PostgreSQL and SQLite
ORM = (Target("orm", 0.9),)
CORE = (Target("core", 1.1),)
POINT = (Target("raw", 1.6, ("postgresql",)), Target("raw", 3.0, ("sqlite",)))
# issue 28: at or below the faster of the two fastest async ORMs (Tortoise ORM, Piccolo), on
# every workload either of them can run ("fast_orms" is that faster one, per workload and backend)
PEERS = (Target(report.FAST_ORMS, 1.0),)
# issue 27 item 4: ``find(as_=Schema)`` costs no more than the same work written by hand, dsg_lib's
# own ``find`` or the hand-written ORM's select followed by ``Schema.model_validate(obj,
# from_attributes=True)`` per object. "No more than" is 1x, not the ORM line's 0.9x: Pydantic's
# validation is most of the time and the same work for every contender (``read_objects`` already
# holds dsg_lib's objects to 0.9x the ORM's)
SCHEMAS = (Target(report.BY_HAND, 1.0), Target("orm", 1.0))
CLOSE_MARGIN = 0.10  # a target whose ratio is within 10% of its line is rerun (--confirm-close)


@dataclass(frozen=True)
class Workload:
    key: str
    method: str  # the contender's ``w_<method>``
    call: str  # the dsg_lib call it times
    targets: tuple[Target, ...] = ()
    prep: str = "none"  # "empty" / "seeded": reset the contender's write table first
    server_only: bool = False
    deep: bool = False  # depth workloads: fetch the deep page instead of page 1
    child: bool = False  # runs in a fresh process per contender (memory is measured)

    def title(self, s: Sizes) -> str:
        return {
            "bulk_insert": f"bulk insert {s.bulk_rows:,} rows",
            "get_pk": f"get by pk x{s.gets:,}",
            "get_mapping": f"get by pk as mapping x{s.gets:,}",
            "exists": f"exists by pk x{s.gets:,}",
            "read_rows": f"read {s.read_rows:,} rows (mappings)",
            "read_objects": f"read {s.read_rows:,} rows (ORM objects)",
            "update_pk": f"update by pk x{s.updates:,} (each committed)",
            "delete_pk": f"delete by pk x{s.updates:,} (each committed)",
            "insert_commit": f"insert + commit x{s.inserts:,}",
            "concurrent_gets": f"{s.tasks} tasks x {s.gets_per_task} gets, pool 10",
            "offset_pages": f"{s.pages} offset pages of {s.page_size} (+ total)",
            "keyset_pages": f"{s.pages} keyset pages of {s.page_size}",
            "offset_page1": f"offset page 1 x{s.depth_fetches}",
            "offset_deep": f"offset page {s.deep_page:,} x{s.depth_fetches}",
            "keyset_page1": f"keyset page 1 x{s.depth_fetches}",
            "keyset_deep": f"keyset page {s.deep_page:,} x{s.depth_fetches}",
            "count": f"count with an equality filter x{s.counts}",
            "count_range": f"count with a range filter x{s.counts}",
            "stream": f"stream {s.stream_rows:,} rows",
            "insert_memory": f"insert_many {s.memory_rows:,} rows from a generator",
            "read_schemas": f"read {s.read_rows:,} rows as a Pydantic schema",
            "rel_find": f"find through a to-one relationship x{s.rel_queries}",
            "rel_count": f"count through a to-many relationship x{s.rel_queries}",
        }[self.key]


WORKLOADS: tuple[Workload, ...] = (
    Workload("get_pk", "get_pk", "get", ORM + POINT + PEERS),
    Workload("get_mapping", "get_mapping", "find_mappings(id=)", CORE + POINT + PEERS),
    Workload("exists", "exists", "exists(id=)", CORE + POINT + PEERS),
    Workload("insert_commit", "insert_commit", "create_one", ORM + POINT + PEERS, prep="empty"),
    Workload("update_pk", "update_pk", "update_where(id=)", CORE + POINT + PEERS, prep="seeded"),
    Workload("delete_pk", "delete_pk", "delete_where(id=)", CORE + POINT + PEERS, prep="seeded"),
    Workload("concurrent_gets", "concurrent_gets", "get", ORM + PEERS),
    Workload("read_objects", "read_objects", "find", ORM + PEERS),
    Workload("read_rows", "read_rows", "find_mappings", CORE + PEERS),
    Workload("offset_pages", "offset_pages", "paginate", ORM + PEERS),
    Workload("count", "count", "count(grp=)", CORE + PEERS),
    Workload("count_range", "count_range", "count(grp__lt=)", CORE + PEERS),
    Workload("bulk_insert", "bulk_insert", "insert_many", CORE + PEERS, prep="empty"),
    Workload("keyset_pages", "keyset_pages", "paginate_keyset", PEERS),
    Workload("offset_page1", "offset_depth", "paginate(with_total=False)", PEERS),
    Workload("offset_deep", "offset_depth", "paginate(with_total=False)", PEERS, deep=True),
    Workload("keyset_page1", "keyset_depth", "paginate_keyset", PEERS),
    Workload("keyset_deep", "keyset_depth", "paginate_keyset", PEERS, deep=True),
    Workload("stream", "stream", "stream", PEERS, child=True),
    Workload("insert_memory", "insert_memory", "insert_many(generator)", child=True),
    # issue 27: Pydantic out, filters through relationships (finding objects through the to-one
    # relationship is ORM-object work, like every find: 0.9x the ORM; counting through the to-many
    # one is Core-shaped work, like the other counts: 1.1x Core, the faster hand-written reference)
    Workload("read_schemas", "read_schemas", "find(as_=)", SCHEMAS),
    Workload("rel_find", "rel_find", "find(author__name=)", ORM + PEERS),
    Workload("rel_count", "rel_count", "count(books__title__startswith=)", CORE + PEERS),
)
WORKLOAD_KEYS = tuple(w.key for w in WORKLOADS)


def log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


class BackendRun:
    """Everything measured on one backend: the main repeats, then the reruns of close targets."""

    def __init__(
        self,
        backend: Backend,
        names: list[str],
        workloads: list[Workload],
        sizes: Sizes,
        repeats: int,
        stream_repeats: int,
        quick: bool,
        confirm_repeats: int = 0,
        close_margin: float = CLOSE_MARGIN,
    ) -> None:
        self.backend = backend
        self.names = names
        self.workloads = [w for w in workloads if backend.server or not w.server_only]
        self.sizes = sizes
        self.repeats = repeats
        self.stream_repeats = stream_repeats
        self.quick = quick
        self.confirm_repeats = confirm_repeats
        self.close_margin = close_margin
        self.times: dict[str, dict[str, list[float]]] = {}
        self.errors: dict[str, dict[str, str]] = {}
        self.memory: dict[str, dict[str, dict[str, list[float]]]] = {}  # workload -> contender -> ...
        self.unsupported: list[str] = []  # contenders with no engine for this backend ("n/a")
        self.confirm_times: dict[str, dict[str, list[float]]] = {}
        self.confirmed: list[list[str]] = []  # [workload, against] of every rerun target
        self.server_version = "?"
        self.verbose = False

    def _error(self, workload: str, contender: str, exc: BaseException) -> None:
        try:
            shown = str(exc)
        except Exception:  # advanced-alchemy's IntegrityError cannot print a driver error without args
            shown = repr(exc.__cause__ or exc.__context__)
        text = (f"{type(exc).__name__}: {shown}".splitlines() or [type(exc).__name__])[0][:160]
        if contender not in self.errors.setdefault(workload, {}):
            log(f"    ! {workload} / {contender}: {text}")
        self.errors[workload][contender] = text

    async def run(self) -> None:
        b, s = self.backend, self.sizes
        admin = sqla_engine(b)
        try:
            log(f"[{b.name}] preparing shared tables")
            await ensure_shared_tables(admin, b, s)
            await ensure_related_tables(admin, b, s)
            self.server_version = await server_version(admin, b)
            contenders: list[Contender] = []
            for name in self.names:
                c = make(name, b, s)
                if not c.runs_on(b):
                    self.unsupported.append(name)
                    continue
                try:
                    await c.open()
                    await create_write_table(admin, c.write_table)
                except Exception as exc:  # a peer that cannot run here is reported, not fatal
                    self._error("open", name, exc)
                    continue
                contenders.append(c)
            try:
                await self._timed(admin, contenders)
            finally:
                for c in contenders:
                    await c.close()
        finally:
            await admin.dispose()
        opened = [c.name for c in contenders]
        children = [w for w in self.workloads if w.child]
        for w in children:
            self._children(w.key, opened, self.stream_repeats, self.times, record_memory=True)
        close = self._close([w.key for w in children])
        for w in children:
            if w.key in close:
                names = sorted(close[w.key] & set(opened))
                self._children(w.key, names, self.confirm_repeats, self.confirm_times)

    async def _timed(self, admin: Any, contenders: list[Contender]) -> None:
        b, s = self.backend, self.sizes
        self.rng = random.Random(42)
        self.read_ids = await ids_of(admin, s.read_table, s.read_rows)
        base = Ctx(sizes=s)
        self.deep_after = await id_at(admin, s.big_table, (s.deep_page - 1) * s.page_size - 1)
        timed = [w for w in self.workloads if not w.child]
        for c in contenders:
            try:
                await c.setup(base)
            except Exception as exc:
                self._error("setup", c.name, exc)
        # warm-up (untimed): fill pools and statement caches with the read workloads
        keys = {w.key for w in timed}
        warm = Ctx(sizes=QUICK, ids=self.read_ids[:5], task_ids=[self.read_ids[:2]] * 10)
        for c in contenders:
            for method in (
                "get_pk",
                "concurrent_gets",
                "count",
                "read_rows",
                "read_objects",
                "keyset_pages",
                "read_schemas",
                "rel_find",
                "rel_count",
            ):
                if method == "concurrent_gets" and not (b.server and "concurrent_gets" in keys):
                    continue  # it fills the pools: 10 connections each, only worth it for that workload
                if c.supports(method):
                    try:
                        await c.run(method, warm)
                    except Exception as exc:
                        self._error(method, c.name, exc)
        gc.collect()
        gc.freeze()  # long-lived objects out of the way: gc.collect() before each run stays cheap
        await self._repeats(admin, contenders, timed, self.repeats, self.times, "repeat")
        close = self._close([w.key for w in timed])
        if close:
            log(f"[{b.name}] close to their line, rerun x{self.confirm_repeats}: {', '.join(close)}")
            again = [w for w in timed if w.key in close]
            await self._repeats(
                admin, contenders, again, self.confirm_repeats, self.confirm_times, "rerun", close
            )

    def _close(self, keys: list[str]) -> dict[str, set[str]]:
        """The targets (of these workloads) within ``close_margin`` of their line, as the workloads
        and contenders to rerun; remembers them in ``self.confirmed``."""
        if not self.confirm_repeats:
            return {}
        meta = [
            {"key": w.key, "targets": [asdict(t) for t in w.targets]} for w in self.workloads if w.key in keys
        ]
        rerun: dict[str, set[str]] = {}
        for t in report.targets(self.summary(), meta):
            if t["unit"] != "x" or t["value"] is None or t["workload"] not in keys:
                continue
            if abs(t["value"] / t["target"] - 1.0) > self.close_margin:
                continue
            self.confirmed.append([t["workload"], t["against"]])
            if t["against"] == report.KEYSET_PAGE1:  # dsg_lib's deep keyset page against its first
                for key in ("keyset_page1", "keyset_deep"):
                    rerun.setdefault(key, set()).add("dsg_lib")
                continue
            refs = report.FAST_ORM_NAMES if t["against"] == report.FAST_ORMS else (t["against"],)
            rerun.setdefault(t["workload"], set()).update(("dsg_lib", *refs))
        return rerun

    async def _repeats(
        self,
        admin: Any,
        contenders: list[Contender],
        workloads: list[Workload],
        repeats: int,
        store: dict[str, dict[str, list[float]]],
        what: str,
        only: dict[str, set[str]] | None = None,
    ) -> None:
        """``repeats`` interleaved rounds: every workload, every contender, the order rotated."""
        for repeat in range(repeats):
            started = time.perf_counter()
            for w in workloads:
                shift = repeat % len(contenders) if contenders else 0
                order = contenders[shift:] + contenders[:shift]
                for c in order:
                    if only is not None and c.name not in only.get(w.key, ()):
                        continue
                    if not c.supports(w.method) or c.name in self.errors.get(w.key, {}):
                        continue
                    ctx = await self._prepare(admin, w, c)
                    gc.collect()
                    t0 = time.perf_counter()
                    try:
                        result = await c.run(w.method, ctx)
                    except Exception as exc:
                        self._error(w.key, c.name, exc)
                        continue
                    elapsed = time.perf_counter() - t0
                    problem = await self._verify(admin, w, c, result)
                    if problem:
                        self._error(w.key, c.name, RuntimeError(problem))
                        continue
                    store.setdefault(w.key, {}).setdefault(c.name, []).append(elapsed)
                    if self.verbose:
                        log(f"    {w.key:<16} {c.name:<17} {elapsed * 1000:10.1f} ms")
            took = time.perf_counter() - started
            log(f"[{self.backend.name}] {what} {repeat + 1}/{repeats} done in {took:.1f}s")

    async def _prepare(self, admin: Any, w: Workload, c: Contender) -> Ctx:
        s, rng, read_ids = self.sizes, self.rng, self.read_ids
        ctx = Ctx(sizes=s)
        if w.key == "bulk_insert":
            ctx.rows = _rows(s.bulk_rows)
        elif w.key == "insert_commit":
            ctx.rows = _rows(s.inserts)
        elif w.key in ("get_pk", "get_mapping", "exists"):
            ctx.ids = rng.choices(read_ids, k=s.gets)
        elif w.key == "concurrent_gets":
            ctx.task_ids = [rng.choices(read_ids, k=s.gets_per_task) for _ in range(s.tasks)]
        elif w.deep:
            ctx.page, ctx.after_id = s.deep_page, self.deep_after
        if w.prep == "empty":
            await reset_write_table(admin, self.backend, c.write_table, 0)
        elif w.prep == "seeded":
            ids = await reset_write_table(admin, self.backend, c.write_table, s.updates)
            ctx.ids = rng.sample(ids, len(ids))
        return ctx

    async def _verify(self, admin: Any, w: Workload, c: Contender, result: Any) -> str | None:
        s = self.sizes
        if w.key in ("read_rows", "read_objects", "read_schemas") and result != s.read_rows:
            return f"read {result} rows, expected {s.read_rows}"
        if w.key in ("bulk_insert", "insert_commit"):
            want = s.bulk_rows if w.key == "bulk_insert" else s.inserts
            got = len(await ids_of(admin, c.write_table, want + 1))
            if got != want:
                return f"{got} rows in {c.write_table}, expected {want}"
        if w.key == "rel_find" and result != expected_rel_find(s):
            return f"found {result} books, expected {expected_rel_find(s)}"
        if w.key == "rel_count" and result != expected_rel_count(s):
            return f"counted {result} authors, expected {expected_rel_count(s)}"
        if w.key == "delete_pk" and await ids_of(admin, c.write_table, 1):
            return f"rows left in {c.write_table} after deleting them all"
        return None

    def _children(
        self,
        workload: str,
        names: list[str],
        repeats: int,
        store: dict[str, dict[str, list[float]]],
        record_memory: bool = False,
    ) -> None:
        """A memory workload, one fresh subprocess per contender and repeat (clean RSS)."""
        runnable = [n for n in names if _has(n, workload)]
        if self.quick:  # a smoke run checks dsg_lib's memory targets only: a process start costs seconds
            runnable = [n for n in runnable if n == "dsg_lib"]
        for repeat in range(repeats):
            shift = repeat % len(runnable) if runnable else 0
            for name in runnable[shift:] + runnable[:shift]:
                cmd = [
                    sys.executable,
                    "-m",
                    "benchmarks.stream_child",
                    self.backend.name,
                    name,
                    "--workload",
                    workload,
                ]
                if self.quick:
                    cmd.append("--quick")
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
                if proc.returncode != 0:
                    tail = (proc.stderr or proc.stdout).strip().splitlines()
                    self._error(workload, name, RuntimeError(tail[-1] if tail else f"exit {proc.returncode}"))
                    continue
                data = json.loads(proc.stdout.strip().splitlines()[-1])
                if record_memory:
                    entry = self.memory.setdefault(workload, {}).setdefault(
                        name, {"seconds": [], "rss_growth_mb": []}
                    )
                    entry["seconds"].append(data["seconds"])
                    entry["rss_growth_mb"].append(data["rss_growth_mb"])
                store.setdefault(workload, {}).setdefault(name, []).append(data["seconds"])
            log(f"[{self.backend.name}] {workload} repeat {repeat + 1}/{repeats} done")

    def summary(self) -> dict[str, Any]:
        return {
            "backend": self.backend.name,
            "driver": self.backend.driver,
            "server_version": self.server_version,
            "median_s": _medians(self.times),
            "samples_s": self.times,
            "dialect": self.backend.dialect,
            "memory": {
                w: {
                    c: {"seconds": statistics.median(v["seconds"]), "rss_growth_mb": max(v["rss_growth_mb"])}
                    for c, v in cs.items()
                }
                for w, cs in self.memory.items()
            },
            "unsupported": self.unsupported,
            "confirm": {
                "repeats": self.confirm_repeats,
                "margin": self.close_margin,
                "targets": self.confirmed,
                "median_s": _medians(self.confirm_times),
                "samples_s": self.confirm_times,
            },
            "errors": self.errors,
        }


def _medians(times: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    return {w: {c: statistics.median(v) for c, v in cs.items() if v} for w, cs in times.items()}


def _rows(n: int) -> list[dict[str, Any]]:
    from .common import make_rows

    return make_rows(n)


def _has(name: str, workload: str) -> bool:
    cls = CONTENDERS[name]
    if cls is None:  # the raw driver contender is chosen per backend; every one streams
        return workload == "stream"
    return hasattr(cls, f"w_{workload}")  # (contenders without an engine here were never opened)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="dsg_lib vs raw drivers, SQLAlchemy Core/ORM and peers, on every backend.",
    )
    parser.add_argument(
        "--backends",
        default="sqlite,postgresql,mariadb,mariadb-asyncmy",
        help="comma list of: " + ", ".join(backends()),
    )
    parser.add_argument("--only", default="", help="comma list of workloads: " + ", ".join(WORKLOAD_KEYS))
    parser.add_argument("--contenders", default="", help="comma list of: " + ", ".join(CONTENDERS))
    parser.add_argument(
        "--observed",
        action="store_true",
        help="add dsg_lib_observed: dsg_lib with tracing + metrics on, beside dsg_lib (off)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, 1 repeat, memory workloads for dsg_lib only (CI smoke test)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default 5)")
    parser.add_argument(
        "--confirm-close",
        type=int,
        default=None,
        metavar="N",
        help="rerun every target whose ratio is within --close-margin of its line with N repeats"
        " (default 9; --quick: 0, no reruns)",
    )
    parser.add_argument(
        "--close-margin",
        type=float,
        default=CLOSE_MARGIN,
        help=f"how close to its line a target must be to be rerun (default {CLOSE_MARGIN:g}: 10%%)",
    )
    parser.add_argument(
        "--stream-repeats",
        type=int,
        default=None,
        help="repeats of the memory workloads, stream and insert_memory (default 1; each a fresh process)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every timed run")
    parser.add_argument(
        "--out", default=None, help="directory for results.json, results.md and one chart per backend"
    )
    parser.add_argument(
        "--page",
        nargs="?",
        const="docs/performance.md",
        default=None,
        help="also regenerate the results part of this docs page (default docs/performance.md)"
        " and its charts in docs/img",
    )
    return parser.parse_args(argv)


def _split(value: str, allowed: tuple[str, ...] | list[str], what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return items


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from loguru import logger

    logger.remove()  # a production-like sink: warnings and up (debug calls still pay their level check)
    logger.add(sys.stderr, level="WARNING")
    all_backends = backends()
    chosen = _split(args.backends, list(all_backends), "backend")
    only = _split(args.only, WORKLOAD_KEYS, "workload") if args.only else list(WORKLOAD_KEYS)
    default = [n for n in CONTENDERS if n != "dsg_lib_observed"]  # opt-in: --observed
    names = _split(args.contenders, tuple(CONTENDERS), "contender") if args.contenders else default
    if args.observed and "dsg_lib_observed" not in names:
        names.insert(names.index("dsg_lib") + 1 if "dsg_lib" in names else len(names), "dsg_lib_observed")
    skipped = [n for n in names if not available(n)]
    names = [n for n in names if n not in skipped]
    if skipped:
        log(f"not installed, skipped: {', '.join(skipped)} (pip install 'dsg-lib[bench]')")
    sizes = QUICK if args.quick else FULL
    repeats = args.repeats or (1 if args.quick else 5)
    confirm = args.confirm_close if args.confirm_close is not None else (0 if args.quick else 9)
    stream_repeats = args.stream_repeats or 1
    workloads = [w for w in WORKLOADS if w.key in only]
    started = time.perf_counter()
    runs: list[BackendRun] = []
    for name in chosen:
        run = BackendRun(
            all_backends[name],
            names,
            workloads,
            sizes,
            repeats,
            stream_repeats,
            args.quick,
            confirm_repeats=confirm,
            close_margin=args.close_margin,
        )
        run.verbose = args.verbose
        try:
            asyncio.run(run.run())
        except Exception as exc:  # an unreachable server skips its backend, the rest still runs
            run._error("backend", "all", exc)
        runs.append(run)
    results = report.build(
        [r.summary() for r in runs],
        workloads=workloads,
        sizes=sizes,
        repeats=repeats,
        stream_repeats=stream_repeats,
        confirm_repeats=confirm,
        close_margin=args.close_margin,
        contenders=names,
        elapsed=time.perf_counter() - started,
        quick=args.quick,
    )
    markdown = report.markdown(results)
    sys.stdout.write(markdown + "\n")
    if args.out:
        report.write(results, markdown, args.out)
        log(f"wrote {args.out}/results.json, results.md and the charts")
    if args.page:
        from . import page

        page.update(args.page, json.loads(json.dumps(results, default=str)), os.path.join("docs", "img"))
        log(f"updated {args.page}")
    return 0
