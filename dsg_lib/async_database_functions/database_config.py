"""devsetgo-lib's ``DBConfig``: ``dsg_lib.async_database_functions.database_config``.

`DBConfig` here is `dsg_lib.DBConfig` plus devsetgo-lib's session factory:
``_session_factory`` is a ``sessionmaker`` of ``AsyncSession``, built once,
and ``get_db_session()`` opens each session from it.

``database_config.BASE`` is the process-wide declarative base devsetgo-lib code
declares models on; it still works and warns with a ``DeprecationWarning``.

Examples:
    >>> from dsg_lib.async_database_functions import database_config
    >>> cfg = database_config.DBConfig({"database_uri": "sqlite://"})
    >>> cfg.dialect, type(cfg._session_factory).__name__
    ('sqlite', 'sessionmaker')
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import sessionmaker

from .. import config as _config

__all__ = ["DBConfig"]


class DBConfig(_config.DBConfig):
    """`dsg_lib.DBConfig` with devsetgo-lib's ``_session_factory``.

    Args:
        config: The same config dict as `dsg_lib.DBConfig`.

    Examples:
        >>> import asyncio
        >>> from sqlalchemy import text
        >>> async def main():
        ...     cfg = DBConfig({"database_uri": "sqlite://"})
        ...     async with cfg.get_db_session() as session:
        ...         answer = (await session.execute(text("select 1"))).scalar()
        ...     await cfg.dispose()
        ...     return answer
        >>> asyncio.run(main())
        1
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        # devsetgo-lib's factory: a sessionmaker of AsyncSession, which SQLAlchemy's
        # stubs only type for sync sessions (async_sessionmaker is the typed spelling)
        self._session_factory: sessionmaker[Any] = sessionmaker(  # type: ignore[call-overload]
            bind=self.engine, class_=AsyncSession, expire_on_commit=False
        )

    @asynccontextmanager
    async def get_db_session(self) -> AsyncIterator[AsyncSession]:
        """Yield a new ``AsyncSession`` from ``_session_factory``; errors are translated.

        It is closed on exit (an open transaction rolls back); it never commits for you.
        """
        async with self._session_factory() as session:  # closes, shielded from cancellation
            with self.errors():
                yield session


def __getattr__(name: str) -> Any:
    return _config.__getattr__(name)
