"""dsg_lib quickstart: create a table, insert rows in one transaction, query them.

Install and run (from the repository root)::

    pip install -e . && python examples/quickstart.py

Runs on in-memory SQLite by default and prints only its result. Point
``DATABASE_URL`` at another database to run it there (after
``pip install -e ".[postgres]"`` or ``".[mysql]"``); ``LOG_LEVEL=DEBUG`` shows
the library's log lines on stderr::

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python examples/quickstart.py
    LOG_LEVEL=DEBUG python examples/quickstart.py
"""

from __future__ import annotations

import asyncio
import os
import sys

from loguru import logger
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig

# dsg_lib logs through loguru and leaves the sinks to the app. This script is quiet
# (warnings only) unless you ask: LOG_LEVEL=DEBUG shows every operation.
logger.remove()
logger.add(sys.stderr, level=os.environ.get("LOG_LEVEL", "WARNING"))
logger.enable("dsg_lib")  # the library is quiet until the application turns it on

config = DBConfig.from_env("DATABASE_URL", default="sqlite+aiosqlite:///:memory:")
db = AsyncDatabase(config)
ops = DatabaseOperations(db)


class Quickstart(db.Base):
    __tablename__ = "quickstart_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(200), unique=True)


async def main() -> None:
    async with db:  # connect() on enter, disconnect() on exit
        await db.drop_tables(Quickstart)  # start clean on a persistent database
        await db.create_tables(Quickstart)

        # One transaction: committed on success, rolled back on any error.
        async with db.transaction():
            await ops.insert_many(
                Quickstart,
                [
                    {"name": "Ada Lovelace", "email": "ada@example.com"},
                    {"name": "Grace Hopper", "email": "grace@example.com"},
                    {"name": "Alan Turing", "email": "alan@example.com"},
                ],
            )

        users = await ops.find(Quickstart, email__endswith="@example.com", order_by="name")
        print(f"{len(users)} users in {config.dialect}:")
        for user in users:
            print(f"  {user.name} <{user.email}>")

        await db.drop_tables(Quickstart)


if __name__ == "__main__":
    asyncio.run(main())
