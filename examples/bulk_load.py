"""Load a CSV into a table with ``insert_many``: chunked, constant memory, with a progress bar.

Install (tqdm draws the progress bar; it is in the ``examples`` extra)::

    pip install -e ".[examples]"

Usage::

    python examples/bulk_load.py                 # generates 20,000 rows, loads them into SQLite
    python examples/bulk_load.py --million       # the same with 1,000,000 rows (tens of seconds)
    python examples/bulk_load.py --rows 200000   # any size
    python examples/bulk_load.py data.csv        # your file; columns: sensor,value,taken_at (ISO 8601)
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python examples/bulk_load.py

The generated CSV and the default SQLite database live in a temporary folder
that is removed at the end; the table is dropped from a ``DATABASE_URL``
database. Your own CSV file is only read.

On PostgreSQL ``insert_many`` uses binary COPY; elsewhere the driver's executemany.
Log lines (``LOG_LEVEL=DEBUG``; warnings only by default) are written above the
progress bar, never through it.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from loguru import logger
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from tqdm import tqdm

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig

# dsg_lib logs through loguru and leaves the sinks to the app. Here every line goes
# through tqdm.write, which prints above the progress bar instead of breaking it.
logger.remove()
logger.add(
    lambda message: tqdm.write(message, end="", file=sys.stderr),
    level=os.environ.get("LOG_LEVEL", "WARNING"),
    colorize=False,
)
logger.enable("dsg_lib")  # the library is quiet until the application turns it on

DEFAULT_ROWS = 20_000


class Base(DeclarativeBase):
    pass


class Measurement(Base):
    __tablename__ = "example_measurements"

    id: Mapped[int] = mapped_column(primary_key=True)
    sensor: Mapped[str] = mapped_column(String(20), index=True)
    value: Mapped[float]
    taken_at: Mapped[datetime]


def generate_csv(path: Path, rows: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rng = random.Random(42)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sensor", "value", "taken_at"])
        for i in range(rows):
            writer.writerow(
                [
                    f"s{rng.randrange(100):03d}",
                    round(rng.uniform(-20, 40), 3),
                    (start + timedelta(seconds=i)).isoformat(),
                ]
            )


def read_rows(path: Path, progress: tqdm) -> Iterator[dict[str, object]]:
    """Yield typed dicts one at a time: the whole file is never in memory."""
    with path.open(newline="") as handle:
        for record in csv.DictReader(handle):
            progress.update()
            yield {
                "sensor": record["sensor"],
                "value": float(record["value"]),
                "taken_at": datetime.fromisoformat(record["taken_at"]).replace(tzinfo=None),
            }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("csv", nargs="?", type=Path, help="CSV file (generated when omitted)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--rows", type=int, default=DEFAULT_ROWS, help=f"rows to generate (default {DEFAULT_ROWS:,})"
    )
    size.add_argument(
        "--million", action="store_const", const=1_000_000, dest="rows", help="generate 1,000,000 rows"
    )
    parser.add_argument("--chunk-size", type=int, default=10_000)
    args = parser.parse_args()

    # the generated CSV and the default SQLite database: removed when the run ends, even on an error
    with tempfile.TemporaryDirectory(prefix="dsg_lib_bulk_load_") as workdir:
        path = args.csv
        if path is None:
            path = Path(workdir) / f"bulk_load_{args.rows}.csv"
            print(f"generating {args.rows:,} rows")
            generate_csv(path, args.rows)
        default = f"sqlite+aiosqlite:///{Path(workdir) / 'bulk_load.db'}"
        db = AsyncDatabase(DBConfig.from_env("DATABASE_URL", default=default), base=Base)
        await load(db, path, args.chunk_size)


async def load(db: AsyncDatabase, path: Path, chunk_size: int) -> None:
    ops = DatabaseOperations(db)
    with path.open() as handle:
        total = sum(1 for _ in handle) - 1

    async with db:
        await db.drop_tables(Measurement)
        await db.create_tables(Measurement)
        started = time.perf_counter()
        with tqdm(total=total, unit="rows", disable=not os.isatty(2)) as progress:
            inserted = await ops.insert_many(Measurement, read_rows(path, progress), chunk_size=chunk_size)
        elapsed = time.perf_counter() - started
        counted = await ops.count(Measurement)
        print(f"inserted {inserted:,} rows in {elapsed:.2f} s: {inserted / elapsed:,.0f} rows/s")
        print(f"rows in table: {counted:,}")
        await db.drop_tables(Measurement)


if __name__ == "__main__":
    asyncio.run(main())
