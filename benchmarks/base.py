"""The contender interface every library's benchmark code implements (no library code here)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .common import Backend, Sizes, write_table_name

COLS = "id, name, grp, value, note"
INSERT_COLS = ("name", "grp", "value", "note")


@dataclass
class Ctx:
    """Inputs of one timed run, prepared (untimed) by the runner."""

    sizes: Sizes
    rows: list[dict[str, Any]] = field(default_factory=list)  # rows to insert
    ids: list[int] = field(default_factory=list)  # pks to get / update
    task_ids: list[list[int]] = field(default_factory=list)  # per concurrent task
    page: int = 1  # page number for the depth workloads
    after_id: int = 0  # last id before ``page`` (keyset depth)


def tuples(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["name"], r["grp"], r["value"], r["note"]) for r in rows]


class Contender:
    """Base class: open/close plus the workloads as ``w_*`` coroutines.

    ``dialects`` lists the backends the library can run on at all (empty: every one); on the
    others its cells read "n/a", while a missing ``w_<workload>`` method reads "-" (no such call).
    """

    name = "?"
    label = "?"
    dialects: tuple[str, ...] = ()

    def __init__(self, backend: Backend, sizes: Sizes) -> None:
        self.backend = backend
        self.sizes = sizes
        self.write_table = write_table_name(self.name)
        self.read_t, self.big_t, self.stream_t = sizes.read_table, sizes.big_table, sizes.stream_table

    @classmethod
    def runs_on(cls, backend: Backend) -> bool:
        return not cls.dialects or backend.dialect in cls.dialects

    async def open(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    async def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    async def setup(self, ctx: Ctx) -> None:
        """Untimed per-backend preparation (e.g. a deep keyset cursor)."""

    def supports(self, workload: str) -> bool:
        return callable(getattr(self, f"w_{workload}", None))

    async def _get(self, i: int) -> Any:  # pragma: no cover - interface
        """Fetch the read-table row with primary key ``i`` the contender's idiomatic way."""
        raise NotImplementedError

    async def w_get_pk(self, ctx: Ctx) -> None:
        for i in ctx.ids:
            await self._get(i)

    async def w_concurrent_gets(self, ctx: Ctx) -> None:
        async def task(ids: list[int]) -> None:
            for i in ids:
                await self._get(i)

        await asyncio.gather(*(task(ids) for ids in ctx.task_ids))

    async def run(self, workload: str, ctx: Ctx) -> Any:
        return await getattr(self, f"w_{workload}")(ctx)
