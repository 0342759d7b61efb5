"""Database URLs as users see them in errors: never with the password."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url


def redact(url: str | URL) -> str:
    """The URL with its password replaced by ``***``."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception:
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)
