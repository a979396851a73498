"""The documentation cannot rot: every ```python block in docs/*.md runs here, on every backend.

Each page's blocks run in order in one namespace (a throw-away module), so a
page reads like a script: later blocks use the names earlier ones defined.
Top-level ``await`` is allowed (the docs read like the ``python -m asyncio``
REPL); the blocks run on the test's event loop. A page runs once per backend:
as written (in-memory SQLite), then on PostgreSQL and on MariaDB, with its
in-memory SQLite URL replaced by the server's, on a database emptied first.

Blocks that must not run use another fence language (```bash, ```text,
```toml) or follow the hidden marker line ``<!-- doc-test: skip <reason> -->``;
``<!-- doc-test: sqlite-only <reason> -->`` runs a block on SQLite only.
The markers are HTML comments, so the published page shows none of them.
Blocks that only include a file (``--8<-- "examples/quickstart.py"``) are
skipped here: those files are run by their own tests.

Besides running the code, a few cheap checks keep the reference parts honest:
every ``DBConfig`` key, every public ``DatabaseOperations`` method, every
filter operator and every error class is named on its page, and every page is
in the mkdocs nav.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from dsg_lib import AsyncDatabase, DatabaseError, DatabaseOperations, errors
from dsg_lib.config import _keys as _config_keys
from dsg_lib.filters import OPERATORS
from tests.helpers import BACKENDS, ROOT, backend_problem, backend_url, unreachable

DOCS = ROOT / "docs"
SKIP_MARKER = "<!-- doc-test: skip"
SQLITE_ONLY_MARKER = "<!-- doc-test: sqlite-only"
ONLY_MARKER = "<!-- doc-test: only "
MEMORY_URL = "sqlite+aiosqlite:///:memory:"
DOC_BACKENDS = [b for b in ("sqlite_memory", "postgresql", "mariadb") if b in BACKENDS]
_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a docs page."""

    path: Path
    line: int  # 1-based line of the first code line
    language: str
    code: str
    marker: str = ""  # the HTML comment line right above the fence, if any

    @property
    def skipped(self) -> bool:
        return self.marker.startswith(SKIP_MARKER)

    def runs_on(self, backend: str) -> bool:
        """``sqlite-only`` and ``only sqlite,postgresql`` markers limit where a block runs."""
        if self.marker.startswith(SQLITE_ONLY_MARKER):
            return backend.startswith("sqlite")
        if self.marker.startswith(ONLY_MARKER):
            names = self.marker[len(ONLY_MARKER) :].split()[0].split(",")
            return any(backend.startswith(name) for name in names)
        return True

    @property
    def include_only(self) -> bool:
        return "--8<--" in self.code

    @property
    def runnable(self) -> bool:
        return self.language in ("python", "py") and not self.skipped and not self.include_only


def code_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` (nested fences in admonitions and tabs included)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE_OPEN.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = match.group("indent"), match.group("fence")
        info = match.group("info").strip()
        language = info.split()[0].lstrip(".{").rstrip("}").lower() if info else ""
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        above = lines[i - 1].strip() if i > 0 else ""
        marker = above if above.startswith("<!--") and "doc-test" in above else ""
        blocks.append(Block(path, i + 2, language, "\n".join(body) + "\n", marker))
        i = j + 1
    return blocks


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def runnable_pages() -> list[Path]:
    return [p for p in pages() if any(b.runnable for b in code_blocks(p))]


async def run_page(path: Path, url: str = MEMORY_URL, backend: str = "sqlite_memory") -> int:
    """Run the page's python blocks in order in one module namespace; return how many ran."""
    name = f"_dsg_docs_{path.stem.replace('-', '_')}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module
    namespace = module.__dict__
    environ = dict(os.environ)
    ran = 0
    try:
        for block in code_blocks(path):
            if not block.runnable or not block.runs_on(backend):
                continue
            # leading newlines make tracebacks point at the line in the .md file
            source = "\n" * (block.line - 1) + block.code.replace(MEMORY_URL, url)
            code = compile(source, str(path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
            result = eval(code, namespace)
            if inspect.iscoroutine(result):
                await result
            ran += 1
    finally:
        for value in list(namespace.values()):
            if isinstance(value, AsyncDatabase):
                await value.disconnect()
        os.environ.clear()
        os.environ.update(environ)
        sys.modules.pop(name, None)
    return ran


async def empty_database(url: str) -> None:
    """Drop every table of the server database ``url`` (pages reuse table names with other columns)."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
            else:
                names = (await conn.execute(text("SHOW FULL TABLES"))).all()
                await conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
                for table, kind in names:
                    word = "VIEW" if kind == "VIEW" else "TABLE"
                    await conn.execute(text(f"DROP {word} IF EXISTS `{table}`"))
                await conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", DOC_BACKENDS)
@pytest.mark.parametrize("page", runnable_pages(), ids=lambda p: p.name)
async def test_page_code_blocks_run(page: Path, backend: str, tmp_path: Path) -> None:
    url = MEMORY_URL
    if backend != "sqlite_memory":
        problem = await backend_problem(backend)
        if problem:
            unreachable(backend, problem)
        url = backend_url(backend, tmp_path)
        await empty_database(url)
    assert await run_page(page, url, backend) > 0


def test_published_code_shows_no_test_marker() -> None:
    for page in pages():
        for block in code_blocks(page):
            assert "doc-test" not in block.code, f"{page.name}:{block.line}: use an HTML comment marker"


def test_skipped_blocks_give_a_reason() -> None:
    for page in pages():
        for block in code_blocks(page):
            if block.marker:
                words = block.marker.split("doc-test:", 1)[1].removesuffix("-->").split()
                skip = 2 if words[:1] == ["only"] else 1  # "only" names the backends first
                reason = " ".join(words[skip:])
                assert len(reason) >= 10, f"{page.name}:{block.line}: say why the block is skipped"


def test_there_is_plenty_of_tested_code() -> None:
    runnable = [b for p in pages() for b in code_blocks(p) if b.runnable]
    skipped = [b for p in pages() for b in code_blocks(p) if b.skipped]
    assert len(runnable) >= 60, len(runnable)
    assert len(skipped) <= len(runnable) // 5, "skip markers are for the exception, not the rule"


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in pages():
        assert f" {page.name}" in nav, f"{page.name} is not in mkdocs.yml nav"


def test_configuration_page_names_every_key() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [key for key in _config_keys.KEYS if f"`{key}`" not in text]
    assert not missing, f"configuration.md does not document: {missing}"


def test_operations_page_names_every_method_and_operator() -> None:
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    methods = [
        n for n, _ in inspect.getmembers(DatabaseOperations, inspect.isfunction) if not n.startswith("_")
    ]
    missing = [m for m in methods if f"{m}(" not in text]
    assert not missing, f"operations.md has no example of: {missing}"
    missing_ops = [op for op in OPERATORS if f"`{op}`" not in text]
    assert not missing_ops, f"operations.md filter table misses: {missing_ops}"


def test_errors_page_names_every_error() -> None:
    text = (DOCS / "errors.md").read_text(encoding="utf-8")
    classes = [
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, DatabaseError) and name in errors.__all__
    ]
    missing = [c for c in classes if c not in text]
    assert not missing, f"errors.md does not mention: {missing}"


def test_code_block_parser(tmp_path: Path) -> None:
    sample = tmp_path / "sample.md"
    sample.write_text(
        "text\n```python\nx = 1\n```\n\n!!! note\n    ```python\n    y = x + 1\n    ```\n"
        "```bash\nls\n```\n<!-- doc-test: skip needs a running server -->\n```python\nboom()\n```\n",
        encoding="utf-8",
    )
    blocks = code_blocks(sample)
    assert [(b.language, b.line, b.runnable) for b in blocks] == [
        ("python", 3, True),
        ("python", 8, True),
        ("bash", 11, False),
        ("python", 15, False),
    ]
    assert blocks[1].code == "y = x + 1\n"


def _pyproject_section(name: str) -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return text.split(f"\n[{name}]\n", 1)[1].split("\n[", 1)[0]


def test_installation_page_lists_every_extra_and_what_all_holds() -> None:
    section = _pyproject_section("project.optional-dependencies")
    extras = re.findall(r"^([a-z][a-z-]*) = \[", section, re.M)
    text = (DOCS / "installation.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(" `"): line for line in text.splitlines() if line.startswith("| `")}
    missing = [name for name in extras if name not in rows]
    assert not missing, f"installation.md's extras table misses: {missing}"
    found = re.search(
        r'^all = \["dsg-lib\[([^\]]+)\]"\]', _pyproject_section("project.optional-dependencies"), re.M
    )
    assert found is not None
    for extra in found.group(1).split(","):
        assert f"`{extra}`" in rows["all"].split("|")[2], f"the `all` row does not name {extra}"


def test_documentation_url_is_the_repository_docs() -> None:
    found = re.search(r'^Documentation = "([^"]+)"', _pyproject_section("project.urls"), re.M)
    assert found is not None and (ROOT / found.group(1)).is_file(), "Documentation: a page of docs/"
