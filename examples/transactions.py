"""Atomic money transfers: both sides of a transfer commit together, or neither does.

Install and run (from the repository root)::

    pip install -e . && python examples/transactions.py

Runs on in-memory SQLite by default; set ``DATABASE_URL`` for another database
(``LOG_LEVEL=DEBUG`` shows the library's log lines)::

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test python examples/transactions.py
"""

from __future__ import annotations

import asyncio
import os
import sys

from loguru import logger
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from dsg_lib import AsyncDatabase, DatabaseOperations, DBConfig, RecordNotFoundError

# dsg_lib logs through loguru and leaves the sinks to the app. This script is quiet
# (warnings only) unless you ask: LOG_LEVEL=DEBUG shows every operation.
logger.remove()
logger.add(sys.stderr, level=os.environ.get("LOG_LEVEL", "WARNING"))
logger.enable("dsg_lib")  # the library is quiet until the application turns it on

db = AsyncDatabase(DBConfig.from_env("DATABASE_URL", default="sqlite+aiosqlite:///:memory:"))
ops = DatabaseOperations(db)


class Account(db.Base):
    __tablename__ = "example_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(50), unique=True)
    balance: Mapped[int]  # cents


class InsufficientFunds(Exception):
    """The source account cannot cover the transfer."""


async def transfer(source: int, target: int, amount: int) -> None:
    """Move ``amount`` cents; every operation inside joins the one transaction."""
    async with db.transaction():
        debited = await ops.update_where(
            Account, {"balance": Account.balance - amount}, Account.balance >= amount, id=source
        )
        if debited == 0:
            raise InsufficientFunds(f"account {source} cannot pay {amount}")
        credited = await ops.update_where(Account, {"balance": Account.balance + amount}, id=target)
        if credited == 0:
            raise RecordNotFoundError(f"no account {target}")  # rolls back the debit too


async def balances() -> dict[str, int]:
    return {a.owner: a.balance for a in await ops.find(Account, order_by="owner")}


async def main() -> None:
    async with db:
        await db.drop_tables(Account)
        await db.create_tables(Account)
        await ops.insert_many(
            Account, [{"id": 1, "owner": "alice", "balance": 100_00}, {"id": 2, "owner": "bob", "balance": 0}]
        )
        print("start:          ", await balances())

        await transfer(1, 2, 30_00)
        print("after 30.00:    ", await balances())

        try:
            await transfer(1, 99, 10_00)  # no such account: the debit is rolled back
        except RecordNotFoundError as err:
            print(f"failed transfer: {err.to_dict()}")
        print("after failure:  ", await balances())

        try:
            await transfer(2, 1, 500_00)  # more than bob has
        except InsufficientFunds as err:
            print(f"refused:         {err}")

        total = sum((await balances()).values())
        print(f"total unchanged: {total == 100_00}")
        await db.drop_tables(Account)


if __name__ == "__main__":
    asyncio.run(main())
