"""What runs first when ``dsg_lib`` is imported: quiet logging, and the devsetgo-lib clash check (private).

Examples:
    >>> issubclass(DistributionClashWarning, UserWarning)
    True
"""

from __future__ import annotations

import warnings
from importlib import metadata

from loguru import logger

__all__ = ["DistributionClashWarning"]

# A library stays quiet until the application asks (loguru's guidance for libraries):
# ``logger.enable("dsg_lib")``, the ``log_enabled`` config key, or devsetgo-lib's ``config_log()``.
logger.disable("dsg_lib")


class DistributionClashWarning(UserWarning):
    """devsetgo-lib is installed next to dsg-lib, and both install the ``dsg_lib`` folder.

    Examples:
        >>> from dsg_lib import DistributionClashWarning
        >>> issubclass(DistributionClashWarning, UserWarning)
        True
    """


def clash_message() -> str | None:
    """The warning text when ``devsetgo-lib`` also owns files of ``dsg_lib``, else ``None``.

    Both distributions install the same top-level ``dsg_lib/`` folder: one
    overwrites the other's files, and a later ``pip uninstall devsetgo-lib``
    deletes files dsg-lib needs.

    Examples:
        >>> clash_message() is None  # devsetgo-lib is not installed here
        True
    """
    try:
        other = metadata.distribution("devsetgo-lib")
    except metadata.PackageNotFoundError:
        return None
    files = other.files
    if files is not None and not any(f.parts and f.parts[0] == "dsg_lib" for f in files):
        return None
    return (
        f"dsg_lib: devsetgo-lib {other.version} is installed alongside dsg-lib, and both distributions "
        "install the same 'dsg_lib' package folder: the files of one overwrite the other's, and "
        "'pip uninstall devsetgo-lib' would later delete files dsg-lib needs. Fix: run "
        "'pip uninstall -y devsetgo-lib dsg-lib', then reinstall dsg-lib (its wheel or checkout). "
        "See 'Migrating from devsetgo-lib' in the docs."
    )


_message = clash_message()
if _message is not None:
    warnings.warn(_message, DistributionClashWarning, stacklevel=2)
