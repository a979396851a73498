"""What ``dsg-lib check`` reports: server version, pool, the settings that matter, warnings (private)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import DBConfig

#: SQLAlchemy's QueuePool defaults, used when the config does not set them
POOL_DEFAULTS = {"pool_size": 5, "max_overflow": 10, "pool_timeout": 30}
PG_SETTINGS = (
    "max_connections",
    "superuser_reserved_connections",
    "statement_timeout",
    "idle_in_transaction_session_timeout",
    "default_transaction_isolation",
    "server_encoding",
    "TimeZone",
)
MYSQL_SETTINGS = (
    "wait_timeout",
    "max_connections",
    "max_allowed_packet",
    "tx_isolation",
    "transaction_isolation",
    "character_set_server",
    "time_zone",
    "sql_mode",
)
SQLITE_PRAGMAS = ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")


@dataclass
class Report:
    """The facts ``check`` prints, in order."""

    url: str
    dialect: str
    driver: str
    server: str = ""
    pool: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report as lines of text."""
        out = [
            f"url:       {self.url}",
            f"dialect:   {self.dialect}",
            f"driver:    {self.driver}",
            f"server:    {self.server}",
            "pool:      " + ", ".join(f"{k}={v}" for k, v in self.pool.items()),
            "settings:",
            *(f"  {name:<36} {value}" for name, value in self.settings.items()),
        ]
        out.append("warnings:" if self.warnings else "warnings:  none")
        out.extend(f"  - {w}" for w in self.warnings)
        return out


def pool_settings(cfg: DBConfig) -> dict[str, Any]:
    """The pool settings in effect: the config's, else the library's and SQLAlchemy's defaults."""
    given = cfg.config
    kind = type(cfg.engine.pool).__name__
    if cfg.is_memory:
        return {"class": kind, "pool_size": 1, "max_overflow": 0, "note": "one shared in-memory database"}
    settings: dict[str, Any] = {"class": kind}
    settings.update({k: given.get(k, v) for k, v in POOL_DEFAULTS.items()})
    settings["pool_recycle"] = given.get("pool_recycle", cfg.backend.default_pool_recycle)
    settings["pool_pre_ping"] = given.get("pool_pre_ping", cfg.backend.server)
    return settings


async def build_report(cfg: DBConfig) -> Report:
    """Connect once and collect the report."""
    report = Report(url=cfg.safe_url, dialect=cfg.dialect, driver=cfg.url.get_driver_name())
    report.pool = pool_settings(cfg)
    with cfg.errors():
        async with cfg.engine.connect() as conn:
            # what each server reports is read with its own SQL: one reader per backend
            reader = _SERVER_READERS.get(cfg.backend.name)
            if reader is not None:
                await reader(conn, report)
            else:
                await _sqlite(conn, report, memory=cfg.is_memory)
    return report


def _max_connections(report: Report) -> int:
    pool = report.pool
    return int(pool["pool_size"]) + max(0, int(pool["max_overflow"]))


async def _postgres(conn: AsyncConnection, report: Report) -> None:
    report.server = "PostgreSQL " + str((await conn.execute(text("SHOW server_version"))).scalar())
    rows = await conn.execute(
        text("SELECT name, setting, unit FROM pg_settings WHERE name = ANY(:names)"),
        {"names": list(PG_SETTINGS)},
    )
    for name, setting, unit in rows:
        report.settings[name] = f"{setting}{unit or ''}" if unit and setting not in ("0", "-1") else setting
    available = int(report.settings.get("max_connections", 0)) - int(
        report.settings.get("superuser_reserved_connections", 0)
    )
    if available and _max_connections(report) > available:
        report.warnings.append(
            f"pool_size + max_overflow = {_max_connections(report)} exceeds the {available} connections "
            "the server accepts (max_connections - superuser_reserved_connections), for this process alone"
        )


async def _mysql(conn: AsyncConnection, report: Report) -> None:
    report.server = str((await conn.execute(text("SELECT VERSION()"))).scalar())
    names = ", ".join(f"'{n}'" for n in MYSQL_SETTINGS)  # constants, not user input
    rows = await conn.execute(text(f"SHOW VARIABLES WHERE Variable_name IN ({names})"))
    report.settings.update({str(name): str(value) for name, value in rows})
    wait_timeout = int(report.settings.get("wait_timeout", 0))
    recycle = int(report.pool["pool_recycle"])
    if wait_timeout and (recycle < 0 or recycle >= wait_timeout):
        report.warnings.append(
            f"wait_timeout ({wait_timeout}s) is not above pool_recycle "
            f"({'off' if recycle < 0 else f'{recycle}s'}): the server closes idle "
            f"connections before the pool recycles them; set pool_recycle below {wait_timeout}"
        )
    charset = report.settings.get("character_set_server", "utf8mb4")
    if charset != "utf8mb4":
        report.warnings.append(
            f"character_set_server is {charset}, not utf8mb4: emoji and 4-byte characters may fail"
        )
    max_conn = int(report.settings.get("max_connections", 0))
    if max_conn and _max_connections(report) > max_conn:
        report.warnings.append(
            f"pool_size + max_overflow = {_max_connections(report)} exceeds max_connections ({max_conn})"
        )


async def _sqlite(conn: AsyncConnection, report: Report, memory: bool) -> None:
    report.server = "SQLite " + str((await conn.execute(text("SELECT sqlite_version()"))).scalar())
    for pragma in SQLITE_PRAGMAS:
        report.settings[pragma] = str((await conn.exec_driver_sql(f"PRAGMA {pragma}")).scalar())
    if memory:
        report.warnings.append("in-memory database: its data lives only as long as this process")
    elif report.settings["journal_mode"].lower() != "wal":
        report.warnings.append(
            f"journal_mode is {report.settings['journal_mode']}, not WAL: readers block the writer "
            "(dsg_lib switches a file it opens for writing to WAL, unless a network filesystem or a "
            "read-only directory prevents it; check opens the file read-only and changes nothing)"
        )
    if report.settings["foreign_keys"] != "1":
        report.warnings.append("foreign_keys is off: foreign key constraints are not enforced")


_SERVER_READERS = {"postgresql": _postgres, "mysql": _mysql}
