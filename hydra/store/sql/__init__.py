"""The SQL store (SQLAlchemy): SQLite, PostgreSQL, MySQL/MariaDB."""

from hydra.store.sql.store import SQLStore

__all__ = ["SQLStore"]
