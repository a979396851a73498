"""The documentation cannot rot: every ```python block in docs/*.md runs here.

Each page's blocks run in order in one namespace (a throw-away module), so a
page reads like a script: later blocks use the names earlier ones defined.
Top-level ``await`` is allowed (the docs read like the ``python -m asyncio``
REPL); the blocks run on the test's event loop, on in-memory SQLite unless the
page says otherwise.

Blocks that must not run use another fence language (```bash, ```text,
```toml) or start with the marker line ``# doc-test: skip <reason>``.
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

from dsg_lib import AsyncDatabase, DatabaseError, DatabaseOperations, _config_keys, errors
from dsg_lib.filters import OPERATORS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SKIP_MARKER = "# doc-test: skip"
_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a docs page."""

    path: Path
    line: int  # 1-based line of the first code line
    language: str
    code: str

    @property
    def skipped(self) -> bool:
        return self.code.lstrip().startswith(SKIP_MARKER)

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
        blocks.append(Block(path, i + 2, language, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def runnable_pages() -> list[Path]:
    return [p for p in pages() if any(b.runnable for b in code_blocks(p))]


async def run_page(path: Path) -> int:
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
            if not block.runnable:
                continue
            # leading newlines make tracebacks point at the line in the .md file
            source = "\n" * (block.line - 1) + block.code
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


@pytest.mark.parametrize("page", runnable_pages(), ids=lambda p: p.name)
async def test_page_code_blocks_run(page: Path) -> None:
    assert await run_page(page) > 0


def test_skipped_blocks_give_a_reason() -> None:
    for page in pages():
        for block in code_blocks(page):
            if block.skipped:
                first = block.code.lstrip().splitlines()[0]
                reason = first[len(SKIP_MARKER) :].strip(" :-")
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
        "```bash\nls\n```\n```python\n# doc-test: skip needs a running server\nboom()\n```\n",
        encoding="utf-8",
    )
    blocks = code_blocks(sample)
    assert [(b.language, b.line, b.runnable) for b in blocks] == [
        ("python", 3, True),
        ("python", 8, True),
        ("bash", 11, False),
        ("python", 14, False),
    ]
    assert blocks[1].code == "y = x + 1\n"
