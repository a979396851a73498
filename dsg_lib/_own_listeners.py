"""dsg_lib's own engine event listeners, so they are told apart from an application's (private).

The operations' executor runs a statement as one compiled driver call only
when no event the application listens for would be skipped by it (see
``operations/_executor.py``). dsg_lib's own hooks (the explicit BEGIN, the
size guard, the statement timers, the commit watcher) are written for both
paths, so they do not count: each is registered here with `own`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: every engine listener function dsg_lib installed (held weakly: they die with their engine)
OWN: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()


def own(fn: F) -> F:
    """Mark ``fn`` as one of dsg_lib's own engine listeners (use above ``event.listens_for``).

    Examples:
        >>> @own
        ... def hook(*args):
        ...     pass
        >>> hook in OWN
        True
    """
    OWN.add(fn)
    return fn
