"""The examples run as scripts, on every backend, and print what they promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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
    result = run_example(QUICKSTART, "oracle://user:secretpw@host/db")
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
