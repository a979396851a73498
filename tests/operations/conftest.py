"""Fixtures of the operations tests: ``env``, a fresh schema of the module's ``models``.

``env`` is ``db`` on freshly created tables of the ``models`` fixture (see ``fresh_env`` in
tests/helpers.py): ``env.db``, ``env.ops``, the models as ``env.m``, and ``env.dialect``. A module
defines ``models`` for its own tables (the default: the value models of tests/helpers.py); a module
that needs rows in them overrides ``env`` with a fixture of the same name that takes ``env`` and
inserts them; such an override also takes ``db``, so pytest before 9 (the lowest pytest CI runs)
sees the backend parametrization through the override. (Both executor strategies: ``strategy``
in tests/conftest.py.)
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dsg_lib import AsyncDatabase
from tests.helpers import fresh_env, make_value_models


@pytest.fixture
def models(db: AsyncDatabase) -> SimpleNamespace:
    """The models ``env`` creates: the value models unless the module defines its own ``models``."""
    return make_value_models(db)


@pytest.fixture
async def env(db: AsyncDatabase, models: SimpleNamespace) -> SimpleNamespace:
    """``db`` on freshly created tables of ``models``, with ``ops``, ``m`` and ``dialect``."""
    return await fresh_env(db, models)
