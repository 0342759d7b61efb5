"""Database URLs: the forms users write, and how they see them in messages.

``normalize`` turns the usual spellings into the driver hydra installs: ``postgres://``
and ``postgresql://`` (what ``DATABASE_URL`` usually holds; SQLAlchemy would pick
psycopg2, which hydra does not depend on) become ``postgresql+psycopg://``, and a
``mysql://`` / ``mariadb://`` without a driver becomes ``+pymysql``. ``redact`` is the only
form to print: the password replaced by ``***``.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

#: a driverless scheme (as written, or SQLAlchemy's name for it) -> the driver hydra uses
_DEFAULT_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def normalize(url: str | URL) -> URL:
    """``url`` parsed, with a driverless PostgreSQL or MySQL/MariaDB scheme given the
    driver hydra installs (``[postgres]``: psycopg 3, ``[mysql]``: PyMySQL). Raises what
    ``make_url`` raises for a malformed URL."""
    parsed = make_url(url) if isinstance(url, str) else url
    driver = _DEFAULT_DRIVERS.get(parsed.drivername)
    return parsed.set(drivername=driver) if driver is not None else parsed


def redact(url: str | URL) -> str:
    """The URL with its password replaced by ``***`` (and a SQLite path as written:
    ``sqlite:///:memory:``, not ``%3Amemory%3A``)."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception:
        return "<unparseable database URL>"
    if parsed.get_backend_name() == "sqlite" and parsed.database and not parsed.query:
        return f"{parsed.drivername}:///{parsed.database}"
    return parsed.render_as_string(hide_password=True)
