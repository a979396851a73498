"""The examples run as scripts, on every backend, and print what they promise."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import MetaData, Table

from dsg_lib import AsyncDatabase, DBConfig
from tests.helpers import ROOT, unused_port

QUICKSTART = ROOT / "examples" / "quickstart.py"

EXPECTED_LINES = [
    "  Ada Lovelace <ada@example.com>",
    "  Alan Turing <alan@example.com>",
    "  Grace Hopper <grace@example.com>",
]


def run_example(path: Path, database_url: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_quickstart_default_is_in_memory_sqlite() -> None:
    result = run_example(QUICKSTART, None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["3 users in sqlite:", *EXPECTED_LINES]


def test_quickstart_on_each_backend(backend: str, db_url: str) -> None:
    result = run_example(QUICKSTART, db_url)
    assert result.returncode == 0, result.stderr
    dialect = {"postgresql": "postgresql", "mariadb": "mysql"}.get(backend, "sqlite")
    assert result.stdout.splitlines() == [f"3 users in {dialect}:", *EXPECTED_LINES]
    # twice in a row on the same database: the example cleans up after itself
    again = run_example(QUICKSTART, db_url)
    assert again.returncode == 0, again.stderr
    assert again.stdout == result.stdout


def test_quickstart_bad_url_fails_cleanly() -> None:
    result = run_example(QUICKSTART, "db2://user:secretpw@host/db")
    assert result.returncode != 0
    assert "ConfigurationError" in result.stderr
    assert "secretpw" not in result.stderr


def test_readme_usage_example_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("```python", readme.index("## Usage")) + len("```python\n")
    code = readme[start : readme.index("```", start)]
    script = tmp_path / "readme_usage.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,  # the example writes app.db in its working directory
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("{'error': 'ConstraintViolationError', 'details': ")
    assert lines[1] == "['ada@example.com']"


def test_transactions_example_keeps_money_consistent(db_url: str) -> None:
    result = run_example(ROOT / "examples" / "transactions.py", db_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "start:           {'alice': 10000, 'bob': 0}",
        "after 30.00:     {'alice': 7000, 'bob': 3000}",
        "failed transfer: {'error': 'RecordNotFoundError', 'details': 'no account 99'}",
        "after failure:   {'alice': 7000, 'bob': 3000}",
        "refused:         account 2 cannot pay 50000",
        "total unchanged: True",
    ]


def test_bulk_load_example_loads_every_row(db_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text(
        "sensor,value,taken_at\n"
        + "".join(f"s{i % 7},{i / 10},2026-01-01T00:00:{i % 60:02d}+00:00\n" for i in range(3000)),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "bulk_load.py"), str(csv_file), "--chunk-size", "1000"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": db_url},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("inserted 3,000 rows in ")
    assert lines[0].endswith(" rows/s")
    assert lines[1] == "rows in table: 3,000"


def _bulk_load(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "bulk_load.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_bulk_load_example_is_small_by_default_and_cleans_up(tmp_path: Path) -> None:
    started = time.perf_counter()
    result = _bulk_load(tmp_path=tmp_path)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert "generating 20,000 rows" in result.stdout
    assert "rows in table: 20,000" in result.stdout
    assert elapsed < 30, f"the default run should take seconds, took {elapsed:.1f} s"
    assert list(tmp_path.iterdir()) == []  # no CSV, no database left behind


def test_bulk_load_example_sizes(tmp_path: Path) -> None:
    result = _bulk_load("--rows", "2500", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rows in table: 2,500" in result.stdout
    assert list(tmp_path.iterdir()) == []
    usage = _bulk_load("--help", tmp_path=tmp_path)
    assert "--million" in usage.stdout and "1,000,000" in usage.stdout
    both = _bulk_load("--rows", "10", "--million", tmp_path=tmp_path)
    assert both.returncode == 2 and "not allowed with" in both.stderr


def _drop_table(db_url: str, name: str) -> None:
    async def drop() -> None:
        db = AsyncDatabase(DBConfig({"database_uri": db_url}))
        await db.drop_tables(Table(name, MetaData()))
        await db.disconnect()

    asyncio.run(drop())


def test_fastapi_example_serves_the_notes_api(db_url: str) -> None:
    _drop_table(db_url, "example_notes")  # start empty on a persistent server database
    port = unused_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": db_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None:  # exited at startup: show why
                    raise AssertionError(f"the app exited at startup:\n{server.communicate()[0][-3000:]}")
                assert time.monotonic() < deadline, "the app did not start"
                time.sleep(0.2)
            created = [
                client.post("/notes", json={"title": f"note {i}", "tag": "home" if i % 2 else "work"})
                for i in range(5)
            ]
            assert [r.status_code for r in created] == [201] * 5
            first = client.get("/notes", params={"limit": 2}).json()
            second = client.get("/notes", params={"limit": 2, "after": first["next_cursor"]}).json()
            titles = [n["title"] for n in first["items"] + second["items"]]
            assert len(set(titles)) == 4
            assert {n["tag"] for n in client.get("/notes", params={"tag": "home"}).json()["items"]} == {
                "home"
            }
            # filter_query: allow-listed, typed filters; anything else is a 422 naming the parameter
            found = client.get("/notes", params={"title__contains": "note 3", "tag__in": ["home", "work"]})
            assert [n["title"] for n in found.json()["items"]] == ["note 3"]
            refused = client.get("/notes", params={"body__contains": "x"})
            assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == [
                "query",
                "body__contains",
            ]
            listed = client.get("/openapi.json").json()["paths"]["/notes"]["get"]["parameters"]
            assert {"tag", "tag__in", "done", "title__contains", "title__startswith"} <= {
                p["name"] for p in listed
            }
            pkid = created[0].json()["pkid"]
            assert client.patch(f"/notes/{pkid}", json={"done": True}).json()["done"] is True
            assert client.delete(f"/notes/{pkid}").status_code == 204
            missing = client.get(f"/notes/{pkid}")
            assert missing.status_code == 404
            assert missing.json()["error"] == "RecordNotFoundError"
            assert client.get("/notes", params={"after": "forged"}).status_code == 422
            # a cursor made for the "home" listing is refused on the "work" one
            home = client.get("/notes", params={"tag": "home", "limit": 1}).json()
            foreign = client.get("/notes", params={"tag": "work", "after": home["next_cursor"]})
            assert foreign.status_code == 422 and foreign.json()["error"] == "InvalidInputError"
            documented = client.get("/openapi.json").json()["paths"]["/notes/{pkid}"]["get"]["responses"]
            assert {"404", "409", "422", "503"} <= set(documented)
    finally:
        server.terminate()
        server.wait(timeout=30)
        _drop_table(db_url, "example_notes")
