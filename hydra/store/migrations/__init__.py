"""Alembic migrations for hydra's tables (version table: ``hydra_alembic_version``)."""
