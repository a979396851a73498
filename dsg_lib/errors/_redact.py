"""Keeping bound values and passwords out of error messages and driver logs.

Drivers quote the offending value in some messages (``Duplicate entry 'x'``)
and asyncmy logs server warnings with values; ``dsg_lib`` never lets a value
reach a caller's error or a log unless the engine echoes SQL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

# Patterns that reveal bound values in driver messages; redacted unless echo is on.
_VALUE_PATTERNS = (
    re.compile(r"(Duplicate entry )'.*?'( for key)", re.S),
    re.compile(r"(Incorrect \w+ value: )'.*?'", re.S),
    # MariaDB names only the column here ("Out of range value for column 'c' at row 1"): nothing to hide
    re.compile(r"(value is out of range in )'.*?'", re.S),  # MySQL 1690: the expression holds literals
    re.compile(r"(value )\".*?\"( is out of range for type)", re.S),  # PostgreSQL 22003
    # PostgreSQL 22P02 and friends; type names can be several words ("double precision")
    re.compile(r"(invalid input syntax for (?:type )?[^:\"]+: )\".*\"", re.S),
    re.compile(r"(invalid input value for enum [^:\"]+: )\".*\"", re.S),
    re.compile(r"(malformed [^:\"]+ literal: )\".*\"", re.S),
    re.compile(r"(date/time field value out of range: )\".*\"", re.S),
    re.compile(r"(time zone )\".*?\"( not recognized)", re.S),
    re.compile(r"(invalid byte sequence for encoding \"[^\"]+\": ).*", re.S),
    re.compile(r"(Truncated incorrect \w+ value: )'.*?'", re.S),
    # MySQL / MariaDB 1298; 1064 quotes the statement from the error on, values interpolated
    re.compile(r"(Unknown or incorrect time zone: )'.*?'", re.S),
    re.compile(r"(right syntax to use near )'.*'( at line \d+)", re.S),
)


def redact_values(message: str) -> str:
    """Replace the bound values drivers quote in their messages with ``'<redacted>'``.

    Column, key and constraint names are kept: they say what went wrong
    without saying what the value was.

    Args:
        message: A driver or server message.

    Returns:
        The message with every known value position redacted.

    Examples:
        >>> redact_values("Duplicate entry 'ada@example.com' for key 'email'")
        "Duplicate entry '<redacted>' for key 'email'"
        >>> redact_values("Out of range value for column 'small' at row 1")
        "Out of range value for column 'small' at row 1"
    """
    for pattern in _VALUE_PATTERNS:
        message = pattern.sub(
            lambda m: m.group(1) + "'<redacted>'" + (m.group(2) if m.lastindex and m.lastindex >= 2 else ""),
            message,
        )
    return message


def clean_message(message: str, secrets: Iterable[str], show_values: bool) -> str:
    """Redact values (unless ``show_values``) and mask each secret with ``***``."""
    if not show_values:
        message = redact_values(message)
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


class _RedactDriverLog(logging.Filter):
    """Strip bound values from what drivers log through python ``logging``.

    asyncmy logs every server warning (``Truncated incorrect DOUBLE value:
    '<the value>'``) and the arguments of ``callproc``; dsg_lib never lets a
    value reach a log, so each record is rewritten before any handler sees it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "%r":  # asyncmy's callproc arguments: nothing but values
            record.msg, record.args = "<redacted arguments>", ()
            return True
        if record.name.startswith("aiosqlite") or record.name.startswith("aiomysql"):
            # "executing functools.partial(<execute>, 'INSERT ...', (values))": keep the words only
            if isinstance(record.args, tuple) and record.args:
                record.args = tuple("<redacted>" for _ in record.args)
            elif record.name.startswith("aiomysql") and not record.args:
                record.msg = "<redacted statement>"
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: leave it to logging's own handling
            return True
        record.msg, record.args = redact_values(message), ()
        return True


#: loggers of drivers that put statement values in their records: aiosqlite logs each call
#: (statement and parameters) at DEBUG, aiomysql echoes queries when asked to, asyncmy
#: logs server warnings
_DRIVER_LOGGERS = ("asyncmy", "aiomysql", "aiosqlite")


def install_driver_log_filters() -> None:
    for name in _DRIVER_LOGGERS:
        driver_logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactDriverLog) for f in driver_logger.filters):
            driver_logger.addFilter(_RedactDriverLog())
