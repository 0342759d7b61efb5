"""The SQLAlchemy Core store."""

from hydra.store.sql.store import SQLStore

__all__ = ["SQLStore"]
