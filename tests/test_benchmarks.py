"""The benchmark harness reports issue 15's targets correctly and regenerates the docs page."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import page, report
from benchmarks.common import QUICK
from benchmarks.contenders import CONTENDERS, available
from benchmarks.runner import WORKLOADS
from tests.helpers import ROOT

PEERS_AVAILABLE = available("tortoise") and available("piccolo")  # the bench extra


def _results(dialect: str, times: dict[str, dict[str, float]], memory: dict[str, Any] | None = None) -> Any:
    run = {
        "backend": dialect,
        "driver": "drv",
        "dialect": dialect,
        "server_version": "1",
        "median_s": times,
        "samples_s": {},
        "memory": memory or {},
        "errors": {},
    }
    workloads = [w for w in WORKLOADS if w.key in times or w.key in (memory or {})]
    return report.build(
        [run],
        workloads=workloads,
        sizes=QUICK,
        repeats=1,
        stream_repeats=1,
        contenders=["raw", "core", "orm", "dsg_lib"],
        elapsed=1.0,
        quick=True,
    )


def _verdicts(results: Any) -> dict[tuple[str, str], bool]:
    """Pass/fail of every target that has a reference time (the others read "n/a")."""
    return {
        (t["workload"], t["against"]): t["met"]
        for t in results["runs"][0]["targets"]
        if t["value"] is not None
    }


def test_object_workloads_are_judged_against_the_hand_written_orm_and_raw() -> None:
    times = {
        "get_pk": {"dsg_lib": 0.8, "orm": 1.0, "core": 0.7, "raw": 0.5},
        "read_objects": {"dsg_lib": 1.0, "orm": 1.0, "raw": 0.2},
    }
    assert _verdicts(_results("postgresql", times)) == {
        ("get_pk", "orm"): True,  # 0.80x <= 0.9x
        ("get_pk", "raw"): True,  # 1.60x <= 1.6x on PostgreSQL
        ("read_objects", "orm"): False,  # 1.00x > 0.9x
    }
    # MariaDB has no raw-driver target
    assert _verdicts(_results("mysql", times)) == {("get_pk", "orm"): True, ("read_objects", "orm"): False}


def test_core_shaped_workloads_are_judged_against_core_and_sqlite_raw() -> None:
    times = {"count": {"dsg_lib": 1.2, "core": 1.0}, "exists": {"dsg_lib": 1.0, "core": 1.0, "raw": 0.3}}
    assert _verdicts(_results("sqlite", times)) == {
        ("exists", "core"): True,
        ("exists", "raw"): False,  # 3.33x > 3x on SQLite
        ("count", "core"): False,  # 1.20x > 1.1x
    }


def test_memory_targets_and_table_marks() -> None:
    memory = {
        "stream": {"dsg_lib": {"seconds": 1.0, "rss_growth_mb": 12.0}},
        "insert_memory": {"dsg_lib": {"seconds": 2.0, "rss_growth_mb": 140.0}},
    }
    times = {"stream": {"dsg_lib": 1.0, "raw": 0.5}, "insert_memory": {"dsg_lib": 2.0}}
    results = _results("postgresql", times, memory)
    assert _verdicts(results) == {("stream", "RSS growth"): True, ("insert_memory", "RSS growth"): False}
    table = "\n".join(report.summary_table(results, results["runs"][0]))
    assert "| stream 2,000 rows | `stream` | 1,000 (12.0 MB) |" in table
    assert "< 100 MB: **FAIL** (140.0 MB)" in table
    assert "1 of 2 targets met" in report.markdown(results)


def test_page_update_replaces_only_the_generated_block(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="charts need the bench extra (matplotlib)")
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\n## Method\n\nprose stays\n", encoding="utf-8")
    results = _results("postgresql", {"get_pk": {"dsg_lib": 0.8, "orm": 1.0, "raw": 0.4}})
    page.update(str(doc), results, str(tmp_path / "img"))
    page.update(str(doc), results, str(tmp_path / "img"))  # idempotent: one block, prose kept
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Performance\n\n" + page.START)
    assert text.count(page.START) == 1 and text.endswith("## Method\n\nprose stays\n")
    assert "| get by pk x10 | `get` | 800 | 0.80x |" in text
    assert "≤ 0.9x ORM: pass<br>≤ 1.6x raw: **FAIL**" in text
    assert "![postgresql: dsg_lib time divided by" in text and "(img/bench-postgresql.png)" in text
    assert (tmp_path / "img" / "bench-postgresql.png").stat().st_size > 1000


def test_quick_run_on_sqlite_reports_every_contender(tmp_path: Path) -> None:
    env = {**os.environ, "BENCH_SQLITE_PATH": str(tmp_path / "bench.sqlite3")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--backends",
            "sqlite",
            "--only",
            "get_pk,exists,delete_pk,count_range",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    run = results["runs"][0]
    assert run["errors"] == {}
    # the peers run when the bench extra is installed; the rest always (dsg_lib_observed only with
    # --observed; dsg_lib_by_hand only runs read_schemas)
    expected = {
        name for name in CONTENDERS if available(name) and name not in ("dsg_lib_observed", "dsg_lib_by_hand")
    }
    assert set(run["median_s"]["exists"]) == expected
    assert set(run["median_s"]["count_range"]) == expected
    assert {(t["workload"], t["against"]) for t in run["targets"]} == {
        ("get_pk", "orm"),
        ("get_pk", "raw"),
        ("get_pk", "fast_orms"),
        ("exists", "core"),
        ("exists", "raw"),
        ("exists", "fast_orms"),
        ("delete_pk", "core"),
        ("delete_pk", "raw"),
        ("delete_pk", "fast_orms"),
        ("count_range", "core"),
        ("count_range", "fast_orms"),
    }
    assert "| delete by pk x10 (each committed) | `delete_where(id=)` |" in proc.stdout
    if PEERS_AVAILABLE:  # Piccolo's SQLite engine and Tortoise's both run here
        assert {"tortoise", "piccolo"} <= set(run["median_s"]["get_pk"])
    charts = importlib.util.find_spec("matplotlib") is not None  # the bench extra draws them
    assert (tmp_path / "out" / "benchmarks-sqlite.png").exists() == charts


def test_schema_and_relationship_workloads_have_issue_27_s_targets() -> None:
    times = {
        "read_schemas": {"dsg_lib": 1.0, "dsg_lib_by_hand": 1.05, "orm": 0.95},
        "rel_find": {"dsg_lib": 0.95, "orm": 1.0},
        "rel_count": {"dsg_lib": 1.0, "core": 1.0, "orm": 1.3},
    }
    results = _results("postgresql", times)
    assert _verdicts(results) == {
        ("read_schemas", report.BY_HAND): True,  # 0.95x dsg_lib's find + model_validate by hand (<= 1x)
        ("read_schemas", "orm"): False,  # 1.05x the ORM + model_validate: over 1x
        ("rel_find", "orm"): False,  # 0.95x > 0.9x
        ("rel_count", "core"): True,  # 1.00x <= 1.1x
    }
    lines = "\n".join(report.method_lines(results))
    assert "at most **1x** dsg_lib's `find` then `Schema.model_validate(obj, from_attributes=True)`" in lines
    assert "at most **1x** the hand-written SQLAlchemy ORM code: `find(as_=)`;" in lines
    assert "at most **0.9x** the hand-written SQLAlchemy ORM code: `find(author__name=)`;" in lines
    assert "`count(books__title__startswith=)`" in lines  # the Core line


ISSUE_27 = ("read_schemas", "rel_find", "rel_count")


def _issue_27_smoke(tmp_path: Path, backends: str) -> None:
    """A quick run of the three workloads: every contender's rows and counts are checked by the
    runner (an error otherwise), and every target has a ratio."""
    peers = ",tortoise,piccolo" if PEERS_AVAILABLE else ""
    only = ",".join(ISSUE_27)
    results = _bench(
        tmp_path,
        "--backends",
        backends,
        "--contenders",
        "core,orm,dsg_lib,dsg_lib_by_hand" + peers,
        "--only",
        only,
    )
    for run in results["runs"]:
        assert run["errors"] == {}, run["errors"]
        med = run["median_s"]
        tortoise = {"tortoise"} if PEERS_AVAILABLE else set()
        piccolo = {"piccolo"} if PEERS_AVAILABLE and run["dialect"] != "mysql" else set()
        assert set(med["read_schemas"]) == {"orm", "dsg_lib", "dsg_lib_by_hand"}
        assert set(med["rel_find"]) == {"orm", "dsg_lib", *tortoise, *piccolo}  # Piccolo: to-one only
        assert set(med["rel_count"]) == {"core", "orm", "dsg_lib", *tortoise}
        measured = {(t["workload"], t["against"]) for t in run["targets"] if t["value"]}
        assert measured == {
            ("read_schemas", report.BY_HAND),
            ("read_schemas", "orm"),
            ("rel_find", "orm"),
            ("rel_count", "core"),
            *([("rel_find", report.FAST_ORMS), ("rel_count", report.FAST_ORMS)] if PEERS_AVAILABLE else []),
        }


@pytest.mark.skipif(importlib.util.find_spec("pydantic") is None, reason="the schema workload needs pydantic")
def test_schema_and_relationship_workloads_run_on_sqlite(tmp_path: Path) -> None:
    _issue_27_smoke(tmp_path, "sqlite")


@pytest.mark.skipif(importlib.util.find_spec("pydantic") is None, reason="the schema workload needs pydantic")
def test_schema_and_relationship_workloads_run_on_the_servers(server_backend: str, tmp_path: Path) -> None:
    _issue_27_smoke(tmp_path, "postgresql" if server_backend == "postgresql" else "mariadb")


# --------------------------------------------------------------------------- issue 28: peers, reruns, service
def _peer_results(
    times: dict[str, dict[str, float]],
    samples: dict[str, dict[str, list[float]]] | None = None,
    confirm: dict[str, Any] | None = None,
    unsupported: list[str] | None = None,
) -> Any:
    run = {
        "backend": "postgresql",
        "driver": "asyncpg",
        "dialect": "postgresql",
        "server_version": "15",
        "median_s": times,
        "samples_s": samples or {},
        "memory": {},
        "unsupported": unsupported or [],
        "confirm": confirm or {},
        "errors": {},
    }
    workloads = [w for w in WORKLOADS if w.key in times]
    return report.build(
        [run],
        workloads=workloads,
        sizes=QUICK,
        repeats=5,
        stream_repeats=1,
        contenders=["raw", "core", "orm", "dsg_lib", "tortoise", "piccolo"],
        elapsed=1.0,
        quick=False,
        confirm_repeats=9,
    )


def _target(results: Any, workload: str, against: str) -> dict[str, Any]:
    return next(
        t for t in results["runs"][0]["targets"] if (t["workload"], t["against"]) == (workload, against)
    )


def test_peer_target_is_judged_against_the_faster_of_tortoise_and_piccolo() -> None:
    times = {
        "read_objects": {"dsg_lib": 1.0, "orm": 2.0, "tortoise": 1.25, "piccolo": 0.8},
        "count_range": {"dsg_lib": 1.0, "core": 1.0, "tortoise": 1.25},  # Piccolo has no result here
    }
    results = _peer_results(times)
    slower = _target(results, "read_objects", report.FAST_ORMS)
    assert (slower["ref"], round(slower["value"], 2), slower["met"]) == ("piccolo", 1.25, False)
    faster = _target(results, "count_range", report.FAST_ORMS)
    assert (faster["ref"], faster["value"], faster["met"]) == ("tortoise", 0.8, True)
    overview = "\n".join(report.peers_table(results))
    assert "| read 50 rows (ORM objects) | `find` | **1.25x** Piccolo |" in overview
    assert "| count with a range filter x5 | `count(grp__lt=)` | 0.80x Tortoise |" in overview


def test_a_library_without_an_engine_for_the_backend_reads_n_a() -> None:
    times = {"get_pk": {"dsg_lib": 1.0, "orm": 2.0, "tortoise": 2.0}}
    results = _peer_results(times, unsupported=["piccolo"])
    table = "\n".join(report.summary_table(results, results["runs"][0]))
    assert "| get by pk x10 | `get` | 1,000 | 0.50x | - | - | 0.50x | n/a |" in table


def test_a_close_target_is_decided_by_its_rerun_and_both_figures_are_shown_with_their_spread() -> None:
    times = {"get_pk": {"dsg_lib": 0.95, "orm": 1.0, "raw": 0.9}}  # 0.95x ORM: over 0.9x, within 10%
    samples = {"get_pk": {"dsg_lib": [0.9, 0.95, 1.0], "orm": [1.0, 1.0, 1.0]}}
    confirm = {
        "repeats": 9,
        "targets": [["get_pk", "orm"]],
        "median_s": {"get_pk": {"dsg_lib": 0.85, "orm": 1.0}},
        "samples_s": {"get_pk": {"dsg_lib": [0.8, 0.85, 0.88], "orm": [1.0, 1.0, 1.0]}},
    }
    results = _peer_results(times, samples, confirm)
    t = _target(results, "get_pk", "orm")
    assert (t["first_met"], t["met"]) == (False, True)
    assert t["spread"] == pytest.approx([0.9, 1.0]) and t["confirm"]["spread"] == pytest.approx([0.8, 0.88])
    run = results["runs"][0]
    assert "≤ 0.9x ORM: pass (rerun)" in "\n".join(report.summary_table(results, run))
    assert report.close_calls(results, run)[2] == (
        "| get by pk x10 | ≤ 0.9x ORM | 0.95x (0.90-1.00) | 0.85x (0.80-0.88) | pass |"
    )
    assert "(1 decided by a rerun)" in report.score(run)


def test_close_targets_pick_the_workloads_and_contenders_to_rerun() -> None:
    from benchmarks.common import backends
    from benchmarks.runner import BackendRun

    run = BackendRun(backends()["postgresql"], [], list(WORKLOADS), QUICK, 5, 1, False, confirm_repeats=9)
    run.times = {
        "get_pk": {"dsg_lib": [0.95], "orm": [1.0], "raw": [0.2], "tortoise": [2.0], "piccolo": [0.97]},
        "count": {"dsg_lib": [0.5], "core": [1.0], "tortoise": [0.3]},  # far from every line
        "keyset_page1": {"dsg_lib": [1.0]},
        "keyset_deep": {"dsg_lib": [2.1]},  # 2.1x page 1 against 2x: within 10%
    }
    rerun = run._close(["get_pk", "count", "keyset_page1", "keyset_deep"])
    assert rerun == {
        "get_pk": {"dsg_lib", "orm", "tortoise", "piccolo"},  # 0.95x ORM (0.9x) and 0.98x Piccolo (1x)
        "keyset_page1": {"dsg_lib"},
        "keyset_deep": {"dsg_lib"},
    }
    assert sorted(map(tuple, run.confirmed)) == [
        ("get_pk", "fast_orms"),
        ("get_pk", "orm"),
        ("keyset_deep", "keyset page 1"),
    ]


def test_the_method_lines_are_generated_from_the_run() -> None:
    results = _peer_results({"get_pk": {"dsg_lib": 1.0, "orm": 2.0}})
    lines = "\n".join(report.method_lines(results))
    assert "at most **0.9x** the hand-written SQLAlchemy ORM code: `get`;" in lines
    assert "at most **1.6x** the raw driver on postgresql: `get`;" in lines
    assert "at most **1x** the faster of Tortoise ORM and Piccolo: every workload either can run;" in lines
    assert "a pool of **10** connections" in lines


def _bench(tmp_path: Path, *args: str, module: str = "benchmarks") -> Any:
    """A ``--quick`` run in a subprocess, on the test suite's databases; its results file."""
    from tests.helpers import MYSQL_URL, POSTGRES_URL

    env = {
        **os.environ,
        "BENCH_SQLITE_PATH": str(tmp_path / "bench.sqlite3"),
        "BENCH_PG_URL": POSTGRES_URL,
        "BENCH_MARIADB_URL": MYSQL_URL,
    }
    proc = subprocess.run(
        [sys.executable, "-m", module, "--quick", *args, "--out", str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    name = "service.json" if module == "benchmarks.service" else "results.json"
    return json.loads((tmp_path / "out" / name).read_text(encoding="utf-8"))


PEER_SMOKE = ("get_pk", "concurrent_gets", "insert_commit", "read_objects", "count_range", "bulk_insert")


@pytest.mark.skipif(not PEERS_AVAILABLE, reason="Tortoise ORM and Piccolo come with the bench extra")
def test_tortoise_and_piccolo_run_on_the_server_backends(server_backend: str, tmp_path: Path) -> None:
    """PostgreSQL: both; MariaDB: Tortoise on aiomysql and on asyncmy, Piccolo n/a (no MySQL engine)."""
    names = "postgresql" if server_backend == "postgresql" else "mariadb,mariadb-asyncmy"
    only = ",".join(PEER_SMOKE)
    results = _bench(
        tmp_path, "--backends", names, "--contenders", "raw,dsg_lib,tortoise,piccolo", "--only", only
    )
    assert [run["backend"] for run in results["runs"]] == names.split(",")
    for run in results["runs"]:
        assert run["errors"] == {}, run["errors"]
        server_peers = {"tortoise", "piccolo"} if run["dialect"] == "postgresql" else {"tortoise"}
        assert run["unsupported"] == ([] if run["dialect"] == "postgresql" else ["piccolo"])
        for key in PEER_SMOKE:
            assert {"raw", "dsg_lib", *server_peers} == set(run["median_s"][key]), key
        peer_targets = {t["workload"]: t for t in run["targets"] if t["against"] == report.FAST_ORMS}
        assert set(peer_targets) == set(PEER_SMOKE)
        assert all(t["ref"] in server_peers and t["value"] > 0 for t in peer_targets.values())


def test_the_tortoise_aiomysql_engine_runs_tortoise_s_own_client_on_aiomysql() -> None:
    pytest.importorskip("tortoise", reason="Tortoise ORM comes with the bench extra")
    from benchmarks import tortoise_aiomysql

    client = sys.modules[tortoise_aiomysql.client_class.__module__]
    assert client.mysql.__name__ == "aiomysql"
    assert tortoise_aiomysql.client_class.__name__ == "MySQLClient"


WRK_OUTPUT = """Running 1s test @ http://127.0.0.1:5000/db
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  410.00us   9.80ms   91.00%
    Req/Sec     1.90k    80.00     2.00k    70.00%
  Latency Distribution
     50%    2.01ms
     75%    2.20ms
     90%    2.50ms
     99%  850.00us
  1900 requests in 1.00s, 300.00KB read
  Non-2xx or 3xx responses: 3
Requests/sec:   1899.50
Transfer/sec:    299.80KB
"""


def test_wrk_output_is_read_in_milliseconds_with_failed_responses_counted() -> None:
    from benchmarks.service.runner import parse_wrk

    assert parse_wrk(WRK_OUTPUT) == {
        "rps": 1899.5,
        "p99_ms": pytest.approx(0.85),
        "requests": 1900,
        "failed": 3,
        "socket_errors": 0,
    }
    assert parse_wrk(WRK_OUTPUT.replace("850.00us", "1.20s"))["p99_ms"] == pytest.approx(1200.0)
    with pytest.raises(RuntimeError, match="unexpected wrk output"):
        parse_wrk("unable to connect to 127.0.0.1:5000 Connection refused")


def _service_run(
    rps: dict[str, dict[str, list[float]]], confirm: dict[str, Any] | None = None
) -> dict[str, Any]:
    import statistics

    from benchmarks.service import report as service_report
    from benchmarks.service.runner import TARGETS

    run = {
        "backend": "postgresql",
        "driver": "asyncpg",
        "server_version": "15",
        "median_rps": {r: {a: statistics.median(v) for a, v in apps.items()} for r, apps in rps.items()},
        "median_p99_ms": {r: {a: 10.0 for a in apps} for r, apps in rps.items()},
        "samples_rps": rps,
        "confirm": confirm or {},
        "errors": {},
    }
    run["targets"] = service_report.targets(run, [t.__dict__ for t in TARGETS])
    return run


def test_service_targets_are_requests_per_second_ratios_with_the_rerun_deciding() -> None:
    rps = {
        "db": {
            "raw": [1000.0, 1000.0],
            "orm": [500.0, 500.0],
            "tortoise": [900.0, 1000.0],
            "dsg_lib": [880.0, 900.0],
        }
    }
    confirm = {
        "repeats": 9,
        "targets": [["db", "raw"], ["db", "tortoise"]],
        "median_rps": {"db": {"raw": 1000.0, "tortoise": 950.0, "dsg_lib": 920.0}},
        "samples_rps": {"db": {"raw": [1000.0], "tortoise": [950.0], "dsg_lib": [920.0]}},
    }
    run = _service_run(rps, confirm)
    verdicts = {
        (t["route"], t["against"]): (round(t["value"], 3), t["met"]) for t in run["targets"] if t["value"]
    }
    assert verdicts == {
        ("db", "raw"): (0.89, True),  # 0.89x raw in the first run, 0.92x in the rerun: passes
        ("db", "orm"): (1.78, True),
        ("db", "tortoise"): (0.937, False),  # 0.94x, then 0.97x: still behind Tortoise
    }


def test_the_service_section_and_the_results_section_never_overwrite_each_other(tmp_path: Path) -> None:
    from benchmarks.service import report as service_report

    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\nintro\n\n## How these numbers are made\n\nmethod\n", encoding="utf-8")
    service = {
        "command": "python -m benchmarks.service",
        "date": "today",
        "environment": {"python": "3.11", "cpus": 2},
        "quick": True,
        "settings": {
            "duration_s": 1,
            "repeats": 1,
            "confirm_repeats": 0,
            "close_margin": 0.1,
            "connections": 4,
            "wrk_threads": 1,
            "pool_size": 10,
            "world_rows": 10000,
            "side_by_side": True,
        },
        "apps": ["raw", "orm", "tortoise", "dsg_lib"],
        "target_lines": [{"against": "raw", "limit": 0.9}],
        "routes": {
            "db": "/db",
            "queries": "/queries?n=20",
            "updates": "/updates?n=20",
            "fortunes": "/fortunes",
        },
        "runs": [
            _service_run({"db": {"raw": [100.0], "orm": [50.0], "tortoise": [60.0], "dsg_lib": [95.0]}})
        ],
    }
    service_report.update_page(str(doc), service, str(tmp_path / "img"))
    text = doc.read_text(encoding="utf-8")
    assert text.index(service_report.START) > text.index("intro")
    assert text.index(service_report.END) < text.index("## How these numbers are made")
    assert "| `/db` (one row by id) | 100 (10.0) | 50 (10.0) | 60 (10.0) | 95 (10.0) | 0.95x |" in text
    results = _results("postgresql", {"get_pk": {"dsg_lib": 0.8, "orm": 1.0, "raw": 0.4}})
    page.update(str(doc), results, str(tmp_path / "img"))
    service_report.update_page(str(doc), service, str(tmp_path / "img"))  # again: replaced in place
    text = doc.read_text(encoding="utf-8")
    assert text.count(page.START) == text.count(service_report.START) == 1
    assert "| get by pk x10 | `get` | 800 |" in text and "| `/db` (one row by id) |" in text
    assert text.endswith("## How these numbers are made\n\nmethod\n")


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (Debian package: apt-get install wrk)"
)
@pytest.mark.skipif(
    not PEERS_AVAILABLE, reason="the service apps need the bench extra (Tortoise ORM, uvicorn)"
)
def test_the_service_benchmark_smoke_run_serves_every_route_of_every_app(
    server_backend: str, tmp_path: Path
) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text((ROOT / "docs" / "performance.md").read_text(encoding="utf-8"), encoding="utf-8")
    before = doc.read_text(encoding="utf-8")
    results = _bench(
        tmp_path,
        "--backends",
        server_backend,
        "--page",
        str(doc),
        "--img-dir",
        str(tmp_path / "img"),
        module="benchmarks.service",
    )
    (run,) = results["runs"]
    assert run["errors"] == {}, run["errors"]
    for route in ("db", "queries", "updates", "fortunes"):
        assert set(run["median_rps"][route]) == {"raw", "orm", "tortoise", "dsg_lib"}, route
        assert all(v > 0 for v in run["median_rps"][route].values())
    assert {(t["route"], t["against"]) for t in run["targets"] if t["value"] is not None} == {
        (route, against)
        for route in ("db", "queries", "updates", "fortunes")
        for against in ("raw", "orm", "tortoise")
    }
    text = doc.read_text(encoding="utf-8")
    assert "## FastAPI service" in text and "`/updates?n=20` (20 rows read and updated)" in text
    generated = before[before.index(page.START) : before.index(page.END)]
    assert generated in text  # the main results section is untouched
    assert (tmp_path / "img" / "bench-service.png").stat().st_size > 1000
