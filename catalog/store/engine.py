"""Where a catalog lives and how the store talks to it: URLs, engines, sessions, migrations.

SQLite is the default (one file, WAL journal, foreign keys on, writers serialised with
``BEGIN IMMEDIATE`` so concurrent processes queue instead of failing); any PostgreSQL server
works by URL. Alembic builds and upgrades the schema; nothing calls ``create_all``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from catalog.bounds import load_stored_json
from catalog.errors import (
    AlreadyExistsError,
    CatalogError,
    InvalidInputError,
    SchemaOutOfDateError,
    StoreUnavailableError,
)

ENV_VAR = "CATALOG_DB"
SQLITE_BUSY_TIMEOUT_S = 120
_WRITE = "catalog_write"  # execution option: this connection writes, so take the lock up front
_MIGRATION_LOCK = 7_419_113  # PostgreSQL advisory lock id held while migrating


def default_path() -> Path:
    """``$XDG_DATA_HOME/circuit-catalog/catalog.db`` (``~/.local/share/...`` when unset)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "circuit-catalog" / "catalog.db"


def resolve_url(url: str | None = None) -> str:
    """The database URL to use: `url` (a path or SQLAlchemy URL) > ``$CATALOG_DB`` > the default.

    Plain paths become SQLite URLs; ``postgresql://`` gets the psycopg 3 driver.

    >>> resolve_url("/tmp/x.db")
    'sqlite:////tmp/x.db'
    >>> resolve_url("postgresql://u@host/db")
    'postgresql+psycopg://u@host/db'
    """
    raw = (url or os.environ.get(ENV_VAR) or str(default_path())).strip()
    if "://" not in raw:
        if raw == ":memory:":
            return "sqlite://"
        return f"sqlite:///{Path(raw).expanduser().resolve()}"
    try:
        parsed = make_url(raw)
    except (ArgumentError, ValueError):
        raise InvalidInputError(
            f"'{_redact(raw)}' is not a database URL. Give a file path (catalog.db) or a URL such as "
            "sqlite:///catalog.db or postgresql://user@host/dbname."
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _redact(raw: str) -> str:
    try:
        return make_url(raw).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return raw.split("@")[-1] if "@" in raw else raw


def safe_url(url: str | URL) -> str:
    """The URL for messages: the password, if any, is masked."""
    return make_url(url).render_as_string(hide_password=True) if isinstance(url, str) else \
        url.render_as_string(hide_password=True)


def make_engine(url: str) -> Engine:
    """An engine for `url` (already resolved) with the store's connection settings."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        try:
            return create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10},
                                 json_deserializer=load_stored_json)
        except (ImportError, ModuleNotFoundError):
            raise StoreUnavailableError(
                "PostgreSQL needs the psycopg driver: pip install 'circuit-catalog[postgres]'."
            ) from None
    raise InvalidInputError(
        f"Unsupported database '{backend}' in {safe_url(parsed)}. Use SQLite (a file path) or PostgreSQL."
    )


def _sqlite_engine(url: URL) -> Engine:
    db = url.database
    memory = not db or db == ":memory:"
    if not memory:
        path = Path(db)  # type: ignore[arg-type]
        if path.is_dir():
            raise StoreUnavailableError(f"{path} is a directory; give the catalog a file path such as {path / 'catalog.db'}.")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(f"Cannot create the folder for {path}: {exc.strerror}. Choose another path with --db.") from None
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        json_deserializer=load_stored_json,  # one odd stored value must not break every read
        **({"poolclass": StaticPool} if memory else {}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the store issues BEGIN itself (see _on_begin)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
        if not memory:
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock when the transaction starts, so two writers queue on the
        # busy timeout instead of one failing with "database is locked" on lock upgrade.
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class Connector:
    """An engine plus the one session helper every store operation goes through."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = safe_url(engine.url)
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(engine.execution_options(**{_WRITE: True}), expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session_scope(self, write: bool = False) -> Iterator[Session]:
        """One transaction: commit on success, roll back on any error (Ctrl-C included), and
        translate database errors into the catalog's own."""
        session = (self._write if write else self._read)()
        try:
            yield session
            session.commit()
        except BaseException as exc:
            session.rollback()
            if isinstance(exc, SQLAlchemyError) and not isinstance(exc, CatalogError):
                raise self.translate(exc) from exc
            raise
        finally:
            session.close()

    def translate(self, exc: SQLAlchemyError) -> CatalogError:
        """Map a SQLAlchemy error to a `CatalogError` whose message says what to do."""
        lines = (str(getattr(exc, "orig", None) or "") or str(exc)).strip().splitlines()
        text = lines[0] if lines else type(exc).__name__
        if isinstance(exc, IntegrityError):
            low = text.lower()
            if "unique" in low or "duplicate" in low:
                return AlreadyExistsError(f"This record already exists in the catalog ({text}).")
            return InvalidInputError(f"The catalog refused the record: {text}.")
        if isinstance(exc, OperationalError):
            low = text.lower()
            if "locked" in low or "busy" in low:
                return StoreUnavailableError(
                    f"The catalog {self.url} stayed locked by another writer for {SQLITE_BUSY_TIMEOUT_S} s; try again."
                )
            if "no such table" in low or "undefinedtable" in low or ("relation" in low and "does not exist" in low):
                return SchemaOutOfDateError(f"The catalog {self.url} lacks the table this needs ({text}). Run `catalog db upgrade`.")
            return StoreUnavailableError(f"Cannot use the catalog {self.url}: {text}. Check the path or server and try again.")
        if isinstance(exc, DBAPIError):
            return StoreUnavailableError(f"The catalog {self.url} failed: {text}.")
        return StoreUnavailableError(f"The catalog {self.url} failed: {text}.")


# --- migrations ---------------------------------------------------------------------------------


def migrations_dir() -> Path:
    """The Alembic scripts: ``catalog/_migrations`` in a wheel, ``migrations/`` in a checkout."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "_migrations", package.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise StoreUnavailableError(
        f"The catalog's migration scripts are missing (looked in {package / '_migrations'} and "
        f"{package.parent / 'migrations'}). Reinstall circuit-catalog."
    )


def alembic_config(connection: Any = None) -> Any:
    """An Alembic `Config` built in code (no alembic.ini), bound to `connection` when given."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise StoreUnavailableError(f"The migration scripts have {len(heads)} heads; reinstall circuit-catalog.")
    return heads[0]


def current_revision(connector: Connector) -> str | None:
    from alembic.runtime.migration import MigrationContext

    try:
        with connector.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise connector.translate(exc) from exc


def upgrade(connector: Connector, target: str = "head") -> None:
    """Migrate to `target` inside one locked transaction, so concurrent openers of a new
    database do not race: the second finds the schema already there and does nothing."""
    from alembic import command

    try:
        with connector.engine.execution_options(**{_WRITE: True}).connect() as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            command.upgrade(alembic_config(conn), target)
    except SQLAlchemyError as exc:
        raise connector.translate(exc) from exc


def check_schema(connector: Connector, migrate_empty: bool = True) -> None:
    """Migrate a new, empty database to head; refuse one that is behind, ahead or foreign."""
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    try:
        tables = set(inspect(connector.engine).get_table_names())
    except SQLAlchemyError as exc:
        raise connector.translate(exc) from exc
    if not tables:
        if migrate_empty:
            upgrade(connector)
        return
    current = current_revision(connector)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise StoreUnavailableError(
            f"{connector.url} holds tables ({', '.join(sorted(tables)[:5])}) but is not a circuit-catalog "
            "database. Point --db (or CATALOG_DB) at a new file or an empty database."
        )
    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(current)
    except CommandError:
        raise SchemaOutOfDateError(
            f"The catalog {connector.url} is at schema revision {current}, which this version of "
            "circuit-catalog does not know: it was written by a newer version. Upgrade circuit-catalog."
        ) from None
    raise SchemaOutOfDateError(
        f"The catalog {connector.url} is at schema revision {current}; this version needs {head}. "
        "Run `catalog db upgrade` (back the database up first)."
    )
