"""The ``dsg-lib`` command (also ``python -m dsg_lib``): check a database, create or drop tables.

Exit codes: ``0`` success, ``1`` failure (the database, the import of your
models, or a refused confirmation), ``2`` usage error (bad arguments, no URL,
``drop-tables`` without a terminal and without ``--yes``).

Errors print one line (``error: ConfigurationError: ...``); ``--debug``
shows the traceback. Library log lines are hidden unless ``--verbose``.
Passwords are always masked. ``check`` opens a SQLite file read-only and never
creates one: a path that does not exist is an error that says how the URL's
slashes were read (``sqlite:///app.db`` is relative, ``sqlite:////srv/app.db``
absolute). Output cut short by a closed pipe (``| head``) is not an error.

Examples:
    >>> main(["--help"])  # doctest: +ELLIPSIS
    usage: dsg-lib ...
    0
    >>> main(["check", "sqlite://"])  # doctest: +ELLIPSIS
    url:       sqlite+aiosqlite://
    dialect:   sqlite
    ...
    0
"""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from loguru import logger
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .._sync_bridge import run_coroutine
from ..backends import backend_for
from ..config import DBConfig
from ..errors import DatabaseError
from .check import build_report

__all__ = ["main"]

OK, FAILURE, USAGE = 0, 1, 2

EPILOG = """\
examples:
  dsg-lib check postgresql://app:secret@db.internal/app
  DATABASE_URL=sqlite:///app.db dsg-lib check
  dsg-lib check mysql://app@db/app -o pool_recycle=1800
  dsg-lib create-tables myapp.models:Base --url sqlite:///app.db
  dsg-lib drop-tables myapp.models:Base --yes

The URL comes from the argument or --url, else from $DATABASE_URL. A URL
without an async driver gets the default one (postgresql -> asyncpg,
mysql -> aiomysql, sqlite -> aiosqlite). SQLite: sqlite:///app.db (three
slashes) is app.db in the current directory, sqlite:////srv/app.db (four) the
absolute path /srv/app.db; check opens the file read-only and never creates it.

exit codes:
  0  success
  1  failure: database error, models could not be imported, confirmation declined
  2  usage error: bad arguments, no URL, drop-tables without a terminal and without --yes
"""


class UsageError(Exception):
    """Bad arguments: exit code 2."""


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a DBConfig key, e.g. -o pool_size=10 (repeatable)",
    )
    parser = argparse.ArgumentParser(
        prog="dsg-lib",
        description="Check a database and manage the tables of your models with dsg_lib.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show dsg_lib log lines")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    check = commands.add_parser(
        "check",
        parents=[common],
        help="connect and report the server, pool and settings",
        description="Connect once; print the server version, dialect, driver, pool settings and the "
        "server settings that matter, with warnings (e.g. MySQL wait_timeout below pool_recycle, "
        "SQLite not in WAL mode). The password is masked. A SQLite file is opened read-only: "
        "check never creates one.",
    )
    check.add_argument("url", nargs="?", help="database URL (default: $DATABASE_URL)")

    for name, verb, existing in (
        ("create-tables", "create", "Tables that already exist are left alone."),
        ("drop-tables", "drop", "Tables that do not exist are skipped; asks for confirmation unless --yes."),
    ):
        sub = commands.add_parser(
            name,
            parents=[common],
            help=f"{verb} the tables of module:Base",
            description=f"Import MODULE and {verb} the tables of its declarative base (or MetaData) "
            f"ATTR on the database at --url or $DATABASE_URL. {existing}",
        )
        sub.add_argument("target", metavar="MODULE:ATTR", help="e.g. myapp.models:Base")
        sub.add_argument("--url", help="database URL (default: $DATABASE_URL)")
        if verb == "drop":
            sub.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 1 on failure, 2 on a usage error.

    Examples:
        >>> main(["create-tables", "no-colon"])  # prints the error to stderr
        2
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits 0 for --help, 2 for bad arguments
        return int(exc.code or 0)
    if args.verbose:
        logger.enable("dsg_lib")
    else:
        logger.disable("dsg_lib")
    try:
        return _run(args)
    except BrokenPipeError:  # `dsg-lib check ... | head -2`: the reader has what it wanted
        _silence_stdout()
        return OK
    except UsageError as exc:
        return _fail(str(exc), USAGE, args.debug)
    except DatabaseError as exc:
        return _fail(f"{type(exc).__name__}: {exc}", FAILURE, args.debug)
    except Exception as exc:
        return _fail(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)", FAILURE, args.debug)
    finally:
        logger.disable("dsg_lib")  # the library's default: quiet until the application enables it


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - stdout without a file descriptor
        pass


def _fail(message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    if args.command == "check":
        cfg = _config(args.url, args.option, read_only=True)
        return run_coroutine(_check(cfg))
    metadata = _load_metadata(args.target)
    cfg = _config(args.url, args.option)
    if args.command == "create-tables":
        return run_coroutine(_create(cfg, metadata))
    if not args.yes and not _confirm(cfg, metadata):
        return FAILURE
    return run_coroutine(_drop(cfg, metadata))


def _config(url: str | None, options: list[str], *, read_only: bool = False) -> DBConfig:
    uri = url or os.environ.get("DATABASE_URL")
    if not uri:
        raise UsageError("no database URL: pass one or set DATABASE_URL")
    if read_only:
        uri = _sqlite_read_only(uri)
    return DBConfig({"database_uri": uri, **_options(options)})


def _sqlite_read_only(uri: str) -> str:
    """A SQLite file URL opened read-only (``mode=ro``): checking a mistyped path creates nothing.

    Other URLs are returned unchanged. A file that does not exist is an error
    saying how the URL was read: three slashes are a path relative to the
    current directory, four an absolute path.
    """
    if not uri.startswith("sqlite"):
        return uri
    try:
        url = make_url(uri)
    except (ArgumentError, ValueError):  # ValueError: a multi-host URI (h1:5432,h2:5432)
        return uri  # DBConfig reads it (or reports it)
    database = url.database or ""
    embedded = backend_for(url.get_backend_name()).embedded
    if not embedded or database in ("", ":memory:") or database.startswith("file:"):
        return uri
    path = os.path.abspath(database)
    if not os.path.exists(path):
        kind = "absolute path" if os.path.isabs(database) else "path relative to the current directory"
        raise DatabaseError(
            f"no SQLite database at {path}: {url.drivername}:///{database} names the {kind} "
            f"{database!r} (sqlite:///app.db: app.db in the current directory; sqlite:////srv/app.db, "
            "four slashes: the absolute path /srv/app.db). check does not create the file."
        )
    query = {**url.query, "mode": "ro", "uri": "true"}
    return _render(url.set(database=f"file:{path}", query=query))


def _render(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def _options(pairs: list[str]) -> dict[str, Any]:
    """``-o key=value`` pairs; values are Python literals (``10``, ``True``) or plain strings."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"expected -o KEY=VALUE, got {pair!r}")
        try:
            parsed[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            parsed[key.strip()] = raw
    return parsed


def _load_metadata(target: str) -> MetaData:
    """Import ``module:attr`` and return its ``MetaData`` (a declarative base's, or itself)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"expected MODULE:ATTR (e.g. myapp.models:Base), got {target!r}")
    if os.getcwd() not in sys.path:  # like `python -m`: modules of the current directory import
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    metadata = obj if isinstance(obj, MetaData) else getattr(obj, "metadata", None)
    if not isinstance(metadata, MetaData):
        raise UsageError(f"{target} is neither a declarative base nor a MetaData")
    return metadata


async def _check(cfg: DBConfig) -> int:
    try:
        report = await build_report(cfg)
    finally:
        await cfg.dispose()
    print("\n".join(report.lines()), flush=True)  # flushed here: a closed pipe fails inside main
    return OK


async def _existing(cfg: DBConfig) -> set[str]:
    async with cfg.engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def _run_ddl(cfg: DBConfig, ddl: Callable[[Any], None]) -> set[str]:
    """Run ``metadata.create_all`` / ``drop_all`` in one transaction; the tables there before."""
    try:
        with cfg.errors():
            before = await _existing(cfg)
            async with cfg.engine.begin() as conn:
                await conn.run_sync(ddl)
    finally:
        await cfg.dispose()
    return before


async def _create(cfg: DBConfig, metadata: MetaData) -> int:
    before = await _run_ddl(cfg, metadata.create_all)
    new = [t for t in metadata.tables if t not in before]
    kept = [t for t in metadata.tables if t in before]
    print(f"created {len(new)} table(s){': ' + ', '.join(new) if new else ''} on {cfg.safe_url}")
    if kept:
        print(f"already there: {', '.join(kept)}")
    return OK


def _confirm(cfg: DBConfig, metadata: MetaData) -> bool:
    if not sys.stdin.isatty():
        raise UsageError("drop-tables asks for confirmation and there is no terminal; pass --yes")
    names = ", ".join(metadata.tables)
    question = f"Drop {len(metadata.tables)} table(s) ({names}) and their rows from {cfg.safe_url}? [y/N] "
    try:
        answer = input(question)
    except (EOFError, KeyboardInterrupt):  # Ctrl-D / Ctrl-C at the prompt mean no
        print()
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        return True
    print("aborted: nothing dropped")
    return False


async def _drop(cfg: DBConfig, metadata: MetaData) -> int:
    before = await _run_ddl(cfg, metadata.drop_all)
    gone = [t for t in metadata.tables if t in before]
    print(f"dropped {len(gone)} table(s){': ' + ', '.join(gone) if gone else ''} from {cfg.safe_url}")
    return OK
