"""Query budgets: count the statements a block issues and fail when there are too many (private).

One ``before_cursor_execute`` listener on every engine reads the current budget
(``_context``): the
block's budget is visible from every session and connection the block's task
(and the tasks it starts) uses, lazy loads included, and costs nothing to
code outside a budget but one ``ContextVar.get``.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from .._own_listeners import own
from ..errors import InvalidInputError, QueryBudgetExceededError
from ._context import budget_entered, current_budget

#: transaction control is bookkeeping, not work the code asked for (and differs per backend)
_CONTROL = ("BEGIN", "START TRANSACTION", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


class QueryBudget:
    """The statements counted by one ``query_budget()`` block.

    Attributes:
        max_queries: The budget.
        statements: SQL text of each statement counted so far (never values).

    Examples:
        >>> budget = QueryBudget(max_queries=2)
        >>> budget.record("SELECT 1")
        >>> (budget.count, budget.exceeded)
        (1, False)
    """

    def __init__(self, max_queries: int, parent: QueryBudget | None = None) -> None:
        self.max_queries = max_queries
        self.statements: list[str] = []
        self.parent = parent
        #: the block ended: a task it started that runs on records nothing more here
        self.closed = False

    @property
    def count(self) -> int:
        """How many statements were counted.

        Examples:
            >>> QueryBudget(1).count
            0
        """
        return len(self.statements)

    @property
    def exceeded(self) -> bool:
        """True when more statements than ``max_queries`` were counted.

        Examples:
            >>> QueryBudget(0).exceeded
            False
        """
        return len(self.statements) > self.max_queries

    def record(self, statement: str) -> None:
        """Count one statement here and in every enclosing budget whose block is still open.

        Examples:
            >>> outer = QueryBudget(5)
            >>> QueryBudget(1, parent=outer).record("SELECT 1")
            >>> outer.count
            1
        """
        budget: QueryBudget | None = self
        while budget is not None:
            if not budget.closed:
                budget.statements.append(statement)
            budget = budget.parent


def _on_statement(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
    budget = current_budget()
    if budget is not None and not statement.lstrip()[:17].upper().startswith(_CONTROL):
        budget.record(statement)


def _watch() -> None:
    """Listen on every engine, once: a budget counts whichever database the block uses.

    dsg_lib's own listener: it does not turn compiled statements off for good
    (the executor runs everything through SQLAlchemy while a budget is open,
    so every statement passes this hook and is counted).
    """
    if not event.contains(Engine, "before_cursor_execute", _on_statement):
        event.listen(Engine, "before_cursor_execute", own(_on_statement))


class query_budget:  # lower case: used like a function, ``async with query_budget(3):``
    """Count the statements this task (and tasks it starts) issues inside the block.

    Every session and connection counts, lazy loads and replicas included;
    transaction control (``BEGIN``, ``COMMIT``, ``SAVEPOINT``, ...) does not.
    Usable with ``async with`` and ``with``; ``db.query_budget(max_queries=N)``
    is the same thing.

    Args:
        max_queries: How many statements the block may issue.

    Raises:
        InvalidInputError: ``max_queries`` is not an int >= 0.
        QueryBudgetExceededError: at the end of the block, when more than
            ``max_queries`` statements ran. An exception raised by the block
            itself propagates unchanged instead.

    Examples:
        >>> with query_budget(max_queries=0) as budget:
        ...     pass
        >>> budget.count
        0
    """

    def __init__(self, max_queries: int) -> None:
        if isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries < 0:
            raise InvalidInputError(f"max_queries must be an int >= 0, got {max_queries!r}"[:200])
        self.max_queries = max_queries
        self._entered: ExitStack | None = None
        self._budget: QueryBudget | None = None

    def __enter__(self) -> QueryBudget:
        _watch()
        self._budget = QueryBudget(self.max_queries, parent=current_budget())
        self._entered = ExitStack()
        self._entered.enter_context(budget_entered(self._budget))
        return self._budget

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._entered is not None:
            self._entered.close()
            self._entered = None
        budget = self._budget
        if budget is not None:
            budget.closed = True  # tasks started in the block may outlive it: stop counting
        if exc_type is None and budget is not None and budget.exceeded:
            raise QueryBudgetExceededError(max_queries=budget.max_queries, statements=budget.statements)

    async def __aenter__(self) -> QueryBudget:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.__exit__(exc_type, exc, tb)
