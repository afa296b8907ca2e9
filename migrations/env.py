"""Alembic environment for the catalog: run by `catalog db upgrade` and by `Catalog.open`.

The store passes an open connection in ``config.attributes["connection"]`` (inside its own
locked transaction). Run directly (``alembic -c ...``), it connects to ``$CATALOG_DB``.
SQLite gets batch mode, so later revisions can alter tables there.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from catalog.store.engine import make_engine, resolve_url
from catalog.store.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(resolve_url(config.get_main_option("sqlalchemy.url") or None))
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=resolve_url(config.get_main_option("sqlalchemy.url") or None),
                      target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
