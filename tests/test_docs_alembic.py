"""The Alembic ``env.py`` of docs/migrations.md, copied as written into a real ``alembic`` project."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

MODELS = """\
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Pet(Base):
    __tablename__ = "docs_alembic_pets"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
"""


def documented_env_py() -> str:
    text = (ROOT / "docs" / "migrations.md").read_text(encoding="utf-8")
    section = text.split("## 2. The `env.py`", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def _alembic(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["DATABASE_URL"] = f"sqlite:///{project / 'app.db'}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(project)])
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_documented_env_py_keeps_alembics_output_and_is_quiet_otherwise(tmp_path: Path) -> None:
    pytest.importorskip("alembic")
    assert _alembic(tmp_path, "init", "migrations").returncode == 0
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "models.py").write_text(MODELS)
    (tmp_path / "migrations" / "env.py").write_text(documented_env_py())
    revision = _alembic(tmp_path, "revision", "--autogenerate", "-m", "pets")
    assert revision.returncode == 0, revision.stderr
    upgrade = _alembic(tmp_path, "upgrade", "head")
    assert upgrade.returncode == 0, upgrade.stderr
    output = upgrade.stdout + upgrade.stderr
    assert re.search(r"INFO +\[alembic\.runtime\.migration\] Running upgrade  -> \w+, pets", output), output
    assert "dsg_lib" not in output  # the library stays quiet unless env.py enables it
