"""Parsing, driver selection and masking of database URLs (private)."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from loguru import logger
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..backends import ASYNC_DRIVERS, SUPPORTED, SYNC_DRIVERS, backend_for
from ..errors import ConfigurationError, MissingDependencyError

#: driver -> (importable module, pip extra)
DRIVER_PACKAGES = {
    "aiosqlite": ("aiosqlite", None),
    "asyncpg": ("asyncpg", "postgres"),
    "aiomysql": ("aiomysql", "mysql"),
    "asyncmy": ("asyncmy", "asyncmy"),
    "oracledb": ("oracledb", None),
    "aioodbc": ("aioodbc", None),
}
#: dialects that live in a package of their own: backend -> (importable module, pip package)
DIALECT_PACKAGES = {"cockroachdb": ("sqlalchemy_cockroachdb", "sqlalchemy-cockroachdb")}
_BACKEND_ALIASES = {"postgres": "postgresql", "sqlite3": "sqlite"}


#: parts of a key name that mark its value as a secret (``password``, ``sslpassword``, ``passwd``...)
_SECRET_KEY_PARTS = ("password", "passwd", "secret", "token")
#: a URI as text: scheme, optional ``user[:password]@`` (one ``@``), then no other ``@``
_URI_TEXT = re.compile(
    r"^(?P<scheme>[^:/?#]+://)(?:(?P<user>[^:@/?#]*)(?P<pw>:[^@]*)?@)?(?P<rest>[^@]*)$", re.S
)
_QUERY_SECRET = re.compile(r"(?P<key>[?&][^=&#]*(?:password|passwd|secret|token)[^=&#]*=)[^&#]*", re.I)


def is_secret_key(name: object) -> bool:
    """True for a setting or query key whose value is a secret (``password``, ``cursor_secret``...).

    Examples:
        >>> is_secret_key("password"), is_secret_key("sslpassword"), is_secret_key("ssl")
        (True, True, False)
    """
    return isinstance(name, str) and any(part in name.lower() for part in _SECRET_KEY_PARTS)


def mask_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``values`` with every secret key's value replaced by ``***``.

    Examples:
        >>> mask_mapping({"password": "pw", "ssl": True})
        {'password': '***', 'ssl': True}
    """
    return {k: ("***" if is_secret_key(k) and v is not None else v) for k, v in values.items()}


def query_secrets(url: URL) -> list[str]:
    """The secret values in ``url``'s query string (``?password=...``)."""
    found: list[str] = []
    for key, value in url.query.items():
        if is_secret_key(key):
            found.extend([value] if isinstance(value, str) else list(value))
    return [v for v in found if v]


def mask(url: URL | str) -> str:
    """Render ``url`` with its password (and any ``?password=`` / secret query value) replaced by ``***``.

    A text that SQLAlchemy cannot parse (a multi-host URI such as
    ``postgresql://u:pw@h1:5432,h2:5432/db``) is masked as text; one that is
    not even shaped like a URI gives ``<unparsable URL>``.

    Examples:
        >>> mask("postgresql://u:pw@h1:5432,h2:5432/db?password=pw")
        'postgresql://u:***@h1:5432,h2:5432/db?password=***'
    """
    if isinstance(url, str):
        text = url
        try:
            url = make_url(text)
        except (ArgumentError, ValueError):  # ValueError: a port that is not a number
            return _mask_text(text)
    if url.host and "@" in url.host:  # an unencoded '@' in the password: its tail parsed as the host
        url = url.set(host=url.host.rpartition("@")[2], password="***")
    secret_keys = [k for k in url.query if is_secret_key(k)]
    if secret_keys:
        url = url.update_query_dict(dict.fromkeys(secret_keys, "***"))
    rendered = url.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")
    if backend_for(url.get_backend_name()).embedded:
        # a SQLite "database" is a file path (or :memory:): show it as written, not %-escaped
        rendered = unquote(rendered)
    return rendered


def _mask_text(text: str) -> str:
    match = _URI_TEXT.match(text.strip())
    if match is None:
        return "<unparsable URL>"
    userinfo = ""
    if match["user"] is not None:
        userinfo = f"{match['user']}:***@" if match["pw"] else f"{match['user']}@"
    return match["scheme"] + userinfo + _QUERY_SECRET.sub(r"\g<key>***", match["rest"])


def parse_uri(uri: Any) -> URL:
    """Parse a URI string, raising ``ConfigurationError`` without echoing secrets."""
    if isinstance(uri, URL):
        return uri
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigurationError(
            f"'database_uri' must be a non-empty string like 'sqlite+aiosqlite:///app.db', "
            f"got {type(uri).__name__}"
        )
    try:
        url = make_url(uri.strip())
    except (ArgumentError, ValueError):  # ValueError: a non-numeric port
        raise ConfigurationError(
            "'database_uri' could not be parsed; expected "
            "'dialect[+driver]://user:password@host:port/database'"
        ) from None
    if url.port is not None and not 0 < url.port < 65536:
        raise ConfigurationError(f"'database_uri' has port {url.port}; expected an int in 1..65535")
    return url


def from_parts(parts: Mapping[str, Any]) -> URL:
    """Build a URL from ``dialect``/``host``/``port``/... keys."""
    dialect = parts.get("dialect")
    if not isinstance(dialect, str) or not dialect:
        raise ConfigurationError(
            f"config needs 'database_uri' or 'dialect' (one of: {', '.join(sorted(ASYNC_DRIVERS))})"
        )
    for key in ("host", "username", "password", "database", "driver"):
        value = parts.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(f"config key '{key}' must be a string, got {type(value).__name__}")
    port = parts.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise ConfigurationError(f"config key 'port' must be an int in 1..65535, got {port!r}")
    driver = parts.get("driver")
    drivername = f"{dialect}+{driver}" if driver else dialect
    return URL.create(
        drivername,
        username=parts.get("username"),
        password=parts.get("password"),
        host=parts.get("host"),
        port=port,
        database=parts.get("database"),
    )


def normalize(url: URL) -> tuple[URL, str]:
    """Return ``(url with an async driver, backend name)``.

    Raises:
        ConfigurationError: unknown backend or driver.
        MissingDependencyError: the driver package is not installed.
    """
    backend = _BACKEND_ALIASES.get(url.get_backend_name(), url.get_backend_name())
    if backend not in ASYNC_DRIVERS:
        raise ConfigurationError(
            f"unsupported database dialect '{backend}' in {mask(url)}; supported: {', '.join(SUPPORTED)}"
        )
    default, accepted = ASYNC_DRIVERS[backend]
    driver = url.get_driver_name() if "+" in url.drivername else ""
    if driver not in accepted:
        if driver not in SYNC_DRIVERS:
            raise ConfigurationError(
                f"driver '{driver}' is not supported for dialect '{backend}'; accepted: {', '.join(accepted)}"
            )
        logger.info("dsg_lib: no async driver in {} ; using {}+{}", mask(url), backend, default)
        driver = default
    url = url.set(drivername=f"{backend}+{driver}")
    module, extra = DRIVER_PACKAGES[driver]
    if importlib.util.find_spec(module) is None:
        hint = f'pip install "dsg-lib[{extra}]"' if extra else f"pip install {module}"
        raise MissingDependencyError(
            f"the {backend} driver '{driver}' is not installed; install it with: {hint}"
        )
    module, package = DIALECT_PACKAGES.get(backend, ("", ""))
    if module and importlib.util.find_spec(module) is None:
        hint = f"pip install {package}"
        raise MissingDependencyError(f"the {backend} dialect is not installed; install it with: {hint}")
    return url, backend
