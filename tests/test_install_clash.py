"""Import-time detection of devsetgo-lib installed over (or under) dsg-lib, with real metadata on sys.path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def _fake_devsetgo_lib(site: Path, *, owns_dsg_lib: bool = True) -> None:
    """A real ``.dist-info`` directory, as pip leaves it, in a temporary site folder."""
    info = site / "devsetgo_lib-2026.10.24.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: devsetgo-lib\nVersion: 2026.10.24.1\n", encoding="utf-8"
    )
    package = "dsg_lib" if owns_dsg_lib else "devsetgo_other"
    record = [f"{package}/__init__.py,,", f"{package}/async_database_functions/__init__.py,,"]
    record.append(f"{info.name}/METADATA,,")
    (info / "RECORD").write_text("\n".join(record) + "\n", encoding="utf-8")
    for path in record[:-1]:  # the files themselves, as pip leaves them (Python 3.12+ skips missing ones)
        (site / path.split(",")[0]).parent.mkdir(parents=True, exist_ok=True)
        (site / path.split(",")[0]).write_text("", encoding="utf-8")


def _import(site: Path | None, code: str = "import dsg_lib, dsg_lib.fastapi; import dsg_lib") -> str:
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *([str(site)] if site else [])])
    environ.pop("PYTHONWARNINGS", None)
    result = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_devsetgo_lib_next_to_dsg_lib_warns_once_with_the_fix(tmp_path: Path) -> None:
    _fake_devsetgo_lib(tmp_path)
    stderr = _import(tmp_path)
    assert stderr.count("is installed alongside dsg-lib") == 1, stderr
    assert "devsetgo-lib 2026.10.24.1" in stderr and "dsg-lib" in stderr
    assert "pip uninstall -y devsetgo-lib dsg-lib" in stderr
    assert "reinstall dsg-lib" in stderr


def test_no_warning_without_devsetgo_lib(tmp_path: Path) -> None:
    assert "DistributionClashWarning" not in _import(tmp_path)


def test_no_warning_when_devsetgo_lib_owns_no_dsg_lib_file(tmp_path: Path) -> None:
    _fake_devsetgo_lib(tmp_path, owns_dsg_lib=False)
    assert "DistributionClashWarning" not in _import(tmp_path)


def test_the_warning_can_be_caught_by_its_class(tmp_path: Path) -> None:
    _fake_devsetgo_lib(tmp_path)
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('always')\n"
        "    import dsg_lib\n"
        "print([w.category.__name__ for w in seen])\n"
    )
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]))
    result = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.stdout.strip() == "['DistributionClashWarning']", result.stderr
