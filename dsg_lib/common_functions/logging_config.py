"""devsetgo-lib's ``config_log``: one call that points loguru at a rotating log file.

Examples:
    >>> import tempfile
    >>> from loguru import logger
    >>> folder = tempfile.mkdtemp()
    >>> path = config_log(logging_directory=folder, log_name="app.log", enqueue=False,
    ...                   intercept_standard_logging=False)
    >>> path.name, path.exists()
    ('app.log', True)
    >>> logger.remove()
"""

from __future__ import annotations

import logging
from pathlib import Path

from loguru import logger

__all__ = ["config_log"]

_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSSSSS}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan>:<cyan>{function}</cyan>:<cyan>{line}</cyan> - <level>{message}</level>"
)


class _InterceptHandler(logging.Handler):
    """Forward standard ``logging`` records (uvicorn, sqlalchemy, ...) to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        # depth: report the caller of the logging call, not this handler
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def _intercept(propagate: bool) -> None:
    # level 0: every record reaches loguru, whose sink applies the level
    logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
    for name in list(logging.root.manager.loggerDict):  # loggers created before this call
        named = logging.getLogger(name)
        named.handlers = [_InterceptHandler()]
        named.propagate = propagate  # True would log each record twice (here and at the root)


def _file_name(log_name: str, serialize: bool, app_name: str | None, append_app_name: bool) -> str:
    stem = log_name.removesuffix(".log").removesuffix(".json")
    if append_app_name and app_name:
        stem = f"{stem}_{app_name}"
    return f"{stem}.json" if serialize else f"{stem}.log"


def config_log(
    logging_directory: str = "log",
    log_name: str = "log",
    logging_level: str = "INFO",
    log_rotation: str = "100 MB",
    log_retention: str = "30 days",
    log_backtrace: bool = False,
    log_format: str | None = None,
    log_serializer: bool = False,
    log_diagnose: bool = False,
    app_name: str | None = None,
    append_app_name: bool = False,
    enqueue: bool = True,
    intercept_standard_logging: bool = True,
    log_propagate: bool = False,
    compression: str = "zip",
) -> Path:
    """Send loguru's output to ``logging_directory/log_name`` (rotated, retained, compressed).

    Replaces loguru's existing sinks, as devsetgo-lib does. With
    ``log_serializer=True`` each line is a JSON record in ``<log_name>.json``.

    Args:
        logging_directory: Folder of the log file (created if missing).
        log_name: File name; ``.log`` / ``.json`` is added as needed.
        logging_level: ``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``, ``CRITICAL``, ...
        log_rotation: When to start a new file (``"100 MB"``, ``"1 day"``).
        log_retention: How long rotated files are kept.
        log_backtrace: Extended tracebacks for logged exceptions.
        log_format: A loguru format string (default: time, level, place, message).
        log_serializer: Write JSON records.
        log_diagnose: Show variable values in tracebacks (off: they may hold secrets).
        app_name: Added to every record as ``extra["app_name"]``.
        append_app_name: Add ``app_name`` to the file name.
        enqueue: Write from a background thread (safe across processes).
        intercept_standard_logging: Route the standard ``logging`` module into loguru.
        log_propagate: Let intercepted standard loggers also propagate to their parents.
        compression: Compression of rotated files (``"zip"``, ``"gz"``).

    Returns:
        The path of the log file.

    Raises:
        ValueError: an unknown ``logging_level``.
    """
    level = logging_level.upper()
    if level not in _LEVELS:
        raise ValueError(f"invalid logging level {logging_level!r}; valid levels: {', '.join(_LEVELS)}")
    path = Path(logging_directory) / _file_name(log_name, log_serializer, app_name, append_app_name)
    logger.remove()
    logger.enable("dsg_lib")  # devsetgo-lib users expect the library's lines in their log file
    logger.configure(extra={"app_name": app_name})
    logger.add(
        path,
        level=level,
        format=log_format or _FORMAT,
        rotation=log_rotation,
        retention=log_retention,
        compression=compression,
        enqueue=enqueue,
        backtrace=log_backtrace,
        serialize=log_serializer,
        diagnose=log_diagnose,
    )
    if intercept_standard_logging:
        _intercept(log_propagate)
    return path
