"""Check that an environment holds every direct dependency at the floor pyproject.toml declares.

Run with the Python of the environment to check (the ``lowest`` venv of ``.ci/run``'s
``versions_job``), from the repository root::

    python .ci/check_floors.py test

It reads ``[project].dependencies`` and the named extras (``dsg-lib[...]`` references
expanded), and fails when a requirement has no ``>=`` floor, is not installed, or is
installed at another version than its floor: ``uv pip install --resolution lowest-direct``
silently picks a higher version when the floor cannot be installed with the rest (e.g. a
floor below what another floor requires), and then the floor would not be proven.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

PROJECT = "dsg-lib"


def direct_requirements(pyproject: dict[str, object], extras: list[str]) -> list[Requirement]:
    """The project's dependencies plus those of ``extras``, self-references expanded, first one wins.

    Args:
        pyproject: The parsed pyproject.toml.
        extras: Names of optional-dependency groups.

    Returns:
        One requirement per distribution, in declaration order.
    """
    project = pyproject["project"]
    assert isinstance(project, dict)
    groups: dict[str, list[str]] = project.get("optional-dependencies", {})
    found: dict[str, Requirement] = {}
    seen: set[str] = set()

    def add(lines: list[str]) -> None:
        for line in lines:
            req = Requirement(line)
            if req.name == PROJECT:
                for extra in sorted(req.extras - seen):
                    seen.add(extra)
                    add(groups[extra])
            elif req.marker is None or req.marker.evaluate():
                found.setdefault(req.name.lower(), req)

    add(list(project.get("dependencies", [])))
    for extra in extras:
        if extra not in seen:
            seen.add(extra)
            add(groups[extra])
    return list(found.values())


def main(extras: list[str]) -> int:
    """Print each requirement with its floor and installed version; 1 when one is not at its floor.

    Args:
        extras: Names of optional-dependency groups installed besides the core.

    Returns:
        The exit status.
    """
    pyproject = tomllib.loads(Path("pyproject.toml").read_text())
    problems = 0
    for req in direct_requirements(pyproject, extras):
        floors = [Version(s.version) for s in req.specifier if s.operator == ">="]
        try:
            installed: str | None = version(req.name)
        except PackageNotFoundError:
            installed = None
        floor = floors[0] if floors else None
        if floor is None:
            verdict = "NO FLOOR"
        elif installed is None:
            verdict = "NOT INSTALLED"
        elif Version(installed) != floor:
            verdict = "NOT AT FLOOR"
        else:
            verdict = "ok"
        problems += verdict != "ok"
        print(f"{verdict:<14}{req.name:<22}floor {floor!s:<12}installed {installed}")
    if problems:
        print(f"{problems} direct dependencies are not at their pyproject floor", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
