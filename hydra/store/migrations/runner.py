"""Running hydra's Alembic migrations from code (``SQLStore.migrate``, ``hydra migrate``).

The version table is ``hydra_alembic_version`` so hydra's migrations never collide with an
application's own Alembic history in the same database.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.engine import make_url

VERSION_TABLE = "hydra_alembic_version"
HERE = Path(__file__).parent
# Alembic keeps its migration context in module globals: one migration per process at once.
_ALEMBIC_LOCK = threading.Lock()


def config(connection: Connection | None = None, output: io.StringIO | None = None) -> Config:
    cfg = Config(output_buffer=output) if output is not None else Config()
    cfg.set_main_option("script_location", str(HERE))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if VERSION_TABLE not in inspect(conn).get_table_names():
            return None
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Apply migrations on ``connection`` (the caller commits)."""
    with _ALEMBIC_LOCK:
        command.upgrade(config(connection), revision)


def offline_sql(url: str, revision: str = "head") -> str:
    """The DDL that ``upgrade`` would run, for the URL's dialect, as a SQL script."""
    out = io.StringIO()
    cfg = config(output=out)
    # Offline rendering needs only the dialect; Alembic's config would also choke on '%'.
    backend = make_url(url).get_backend_name()
    cfg.set_main_option("sqlalchemy.url", f"{backend}://")
    with _ALEMBIC_LOCK:
        command.upgrade(cfg, revision, sql=True)
    return out.getvalue()
