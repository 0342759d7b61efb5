"""Alembic environment for hydra's own tables."""

from __future__ import annotations

from alembic import context

from hydra.store.migrations.runner import VERSION_TABLE
from hydra.store.sql.schema import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:
    # Offline mode (``hydra migrate --sql``): render DDL for the URL's dialect.
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # SQLite and PostgreSQL roll DDL back with the transaction; MySQL commits each.
        transactional_ddl=connection.dialect.name not in ("mysql", "mariadb"),
    )
    with context.begin_transaction():
        context.run_migrations()
