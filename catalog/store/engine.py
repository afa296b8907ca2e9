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
from urllib.parse import quote, unquote

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DataError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from catalog.bounds import dump_stored_json, load_stored_json
from catalog.errors import (
    AlreadyExistsError,
    CatalogError,
    InvalidInputError,
    NotFoundError,
    SchemaOutOfDateError,
    StoreUnavailableError,
    redact,
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
        parsed = make_url(_quote_userinfo(raw))
    except (ArgumentError, ValueError):
        raise InvalidInputError(
            f"'{redact(raw)}' is not a database URL. Give a file path (catalog.db) or a URL such as "
            "sqlite:///catalog.db or postgresql://user@host/dbname."
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    password = parsed.query.get("password")
    if isinstance(password, str) and parsed.password is None:
        # ?password=... works for the driver but would print in clear: keep it where URLs hide it.
        parsed = parsed.set(password=password).difference_update_query(["password"])
    return parsed.render_as_string(hide_password=False)


def _quote_userinfo(raw: str) -> str:
    """Percent-encode the user and password of a URL, so an unencoded ``@`` or ``/`` in the
    password is part of it (not of the host). The userinfo ends at the last ``@`` before the query.

    >>> _quote_userinfo("postgresql://bob:p@ss@db:5432/cat")
    'postgresql://bob:p%40ss@db:5432/cat'
    >>> _quote_userinfo("postgresql://bob:p%40ss@db/cat")
    'postgresql://bob:p%40ss@db/cat'
    """
    scheme, rest = raw.split("://", 1)
    at = rest.split("?", 1)[0].rfind("@")
    if at < 0:
        return raw
    user, sep, password = rest[:at].partition(":")
    encoded = quote(unquote(user), safe="") + (sep + quote(unquote(password), safe="") if sep else "")
    return f"{scheme}://{encoded}{rest[at:]}"


def safe_url(url: str | URL) -> str:
    """The URL for messages: the password, wherever it was given, is masked."""
    try:
        text = (make_url(url) if isinstance(url, str) else url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        text = str(url)
    return redact(text)


def make_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for `url` (already resolved) with the store's connection settings.

    A SQLite file that does not exist is created (with its folder) only when `create` is True;
    otherwise `NotFoundError` says so. One whose file or folder is not writable is opened
    read-only."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, create)
    if backend == "postgresql":
        try:
            return create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10},
                                 json_serializer=dump_stored_json, json_deserializer=load_stored_json)
        except (ImportError, ModuleNotFoundError):
            raise StoreUnavailableError(
                "PostgreSQL needs the psycopg driver: pip install 'circuit-catalog[postgres]'."
            ) from None
    raise InvalidInputError(
        f"Unsupported database '{backend}' in {safe_url(parsed)}. Use SQLite (a file path) or PostgreSQL."
    )


def _sqlite_engine(url: URL, create: bool) -> Engine:
    db = url.database
    memory = not db or db == ":memory:"
    read_only = False
    if not memory:
        path = Path(db)  # type: ignore[arg-type]
        if path.is_dir():
            raise StoreUnavailableError(f"{path} is a directory; give the catalog a file path such as {path / 'catalog.db'}.")
        if not path.exists():
            if not create:
                raise NotFoundError(
                    f"There is no catalog at {path}. Check --db (or CATALOG_DB); a catalog is created "
                    "by the first `catalog import`, `catalog published load` or `catalog db upgrade`."
                )
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailableError(f"Cannot create the folder for {path}: {exc.strerror}. Choose another path with --db.") from None
        elif not path.is_file():  # a FIFO or device would hang or be clobbered, never be a catalog
            raise StoreUnavailableError(f"{path} is not a regular file; give the catalog a file path such as catalog.db.")
        else:
            # WAL needs to write beside the file (-wal, -shm) even to read: a read-only file or
            # folder (a read-only mount, a shared copy) is opened read-only instead of failing.
            read_only = not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK))
    if read_only:
        return _read_only_sqlite_engine(Path(db))  # type: ignore[arg-type]
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        json_serializer=dump_stored_json,  # a large value's text is made without a peak of pieces
        json_deserializer=load_stored_json,  # one odd stored value must not break every read
        **({"poolclass": StaticPool} if memory else {}),
    )
    _sqlite_events(engine, wal=not memory)
    return engine


def _read_only_sqlite_engine(path: Path) -> Engine:
    """An engine reading `path` without writing anything: ``mode=ro``, or ``immutable=1`` when
    even that cannot work (WAL without a writable folder for its shared-memory file)."""
    from sqlalchemy.pool import NullPool

    def uri(flags: str) -> str:
        return f"file:{quote(str(path))}?{flags}"

    flags = "mode=ro"
    try:
        probe = sqlite3.connect(uri(flags), uri=True)
        try:
            probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            probe.close()
    except sqlite3.Error:
        flags = "mode=ro&immutable=1"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri(flags), uri=True, timeout=SQLITE_BUSY_TIMEOUT_S, check_same_thread=False)

    engine = create_engine(f"sqlite:///{path}", creator=connect, poolclass=NullPool)
    _sqlite_events(engine, wal=False)
    engine.info_read_only = True  # type: ignore[attr-defined]
    return engine


def _sqlite_events(engine: Engine, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the store issues BEGIN itself (see _on_begin)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
        if wal:
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock when the transaction starts, so two writers queue on the
        # busy timeout instead of one failing with "database is locked" on lock upgrade. A
        # reader's BEGIN holds one snapshot (WAL) for every statement of its transaction.
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def is_read_only(engine: Engine) -> bool:
    """True when `engine` was opened read-only (a SQLite file or folder that is not writable)."""
    return bool(getattr(engine, "info_read_only", False))


class Connector:
    """An engine plus the one session helper every store operation goes through."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = safe_url(engine.url)
        self.read_only = is_read_only(engine)
        reader = engine
        if engine.dialect.name == "postgresql":
            # A read spanning several statements (a circuit's row, nodes, edges...) sees one
            # snapshot: a concurrent delete yields the whole circuit or none of it, never nodes
            # without edges (READ COMMITTED would take a new snapshot per statement).
            reader = engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        self._read = sessionmaker(reader, expire_on_commit=False)
        self._write = sessionmaker(engine.execution_options(**{_WRITE: True}), expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session_scope(self, write: bool = False) -> Iterator[Session]:
        """One transaction: commit on success, roll back on any error (Ctrl-C and the signals
        `catalog.signals` turns into exceptions included), and translate database errors into
        the catalog's own."""
        if write and self.read_only:
            raise StoreUnavailableError(self._read_only_message())
        session = (self._write if write else self._read)()
        try:
            yield session
            session.commit()
        except BaseException as exc:
            session.rollback()
            if isinstance(exc, (SQLAlchemyError, *self._driver_errors)) and not isinstance(exc, CatalogError):
                raise self.translate(exc) from exc
            raise
        finally:
            session.close()

    @property
    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        # Raised unwrapped by the driver where the store talks to it directly (PostgreSQL COPY).
        dbapi = getattr(self.engine.dialect, "loaded_dbapi", None)
        error = getattr(dbapi, "Error", None)
        return (error,) if isinstance(error, type) else ()

    def _read_only_message(self) -> str:
        return (f"The catalog {self.url} is read-only here (its file or folder is not writable): it can be "
                "listed, shown, compared and exported, not changed. Copy it somewhere writable to change it.")

    def translate(self, exc: BaseException) -> CatalogError:
        """Map a SQLAlchemy or driver error to a `CatalogError` whose message says what to do
        (and never shows a password, whatever the driver put in its text)."""
        lines = (str(getattr(exc, "orig", None) or "") or str(exc)).strip().splitlines()
        text = redact(lines[0] if lines else type(exc).__name__)
        low = text.lower()
        exc = _as_sqlalchemy(exc)
        if isinstance(exc, IntegrityError):
            if "unique" in low or "duplicate" in low:
                return AlreadyExistsError(f"This record already exists in the catalog ({text}).")
            return InvalidInputError(f"The catalog refused the record: {text}.")
        if isinstance(exc, DataError):
            # e.g. PostgreSQL's "value too long for type character varying(200)", "integer out of range"
            return InvalidInputError(
                f"The catalog cannot store a value of this circuit ({text}). Shorten over-long names, ids "
                "and tags (names up to 300 characters, ids and tags up to 200) and keep integers within 64 bits."
            )
        if isinstance(exc, OperationalError):
            if "readonly" in low or "read-only" in low or "read only" in low:
                return StoreUnavailableError(self._read_only_message())
            if "locked" in low or "busy" in low:
                return StoreUnavailableError(
                    f"The catalog {self.url} stayed locked by another writer for {SQLITE_BUSY_TIMEOUT_S} s; try again."
                )
            if "no such table" in low or "undefinedtable" in low or ("relation" in low and "does not exist" in low):
                return SchemaOutOfDateError(f"The catalog {self.url} lacks the table this needs ({text}). Run `catalog db upgrade`.")
            if "deadlock" in low or "could not serialize" in low:
                return StoreUnavailableError(f"The catalog {self.url} was busy with a conflicting change; try again.")
            return StoreUnavailableError(f"Cannot use the catalog {self.url}: {text}. Check the path or server and try again.")
        return StoreUnavailableError(f"The catalog {self.url} failed: {text}.")


def _as_sqlalchemy(exc: BaseException) -> BaseException:
    """A raw DB-API error wrapped as SQLAlchemy would (by its PEP 249 class), so one mapping
    serves both; any other exception is returned as it is."""
    if isinstance(exc, SQLAlchemyError):
        return exc
    for name, cls in (("IntegrityError", IntegrityError), ("DataError", DataError),
                      ("OperationalError", OperationalError)):
        if any(base.__name__ == name for base in type(exc).__mro__):
            return cls(None, None, exc)
    return exc


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

    if connector.read_only:
        raise StoreUnavailableError(connector._read_only_message())
    current = current_revision(connector)
    if current is not None and not _known(current):
        raise _newer_error(connector, current)
    try:
        with connector.engine.execution_options(**{_WRITE: True}).connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # Batch mode rebuilds a table (copy, drop, rename); with foreign keys on, dropping
                # the old table would cascade into the rows that reference it (circuits.run_id set
                # to NULL, nodes deleted). SQLite's own recipe: keys off outside the transaction,
                # then check them before committing.
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
            try:
                with conn.begin():
                    if conn.dialect.name == "postgresql":
                        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
                    command.upgrade(alembic_config(conn), target)
                    if sqlite:
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise StoreUnavailableError(
                                f"Migrating {connector.url} would break {len(broken)} references (first: {broken[0]}); "
                                "nothing was changed. Report this with the database attached."
                            )
            finally:
                if sqlite:
                    conn.connection.dbapi_connection.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]
    except SQLAlchemyError as exc:
        raise connector.translate(exc) from exc


def _known(revision: str) -> bool:
    """Whether this version's migration scripts include `revision`."""
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def _newer_error(connector: Connector, current: str) -> SchemaOutOfDateError:
    return SchemaOutOfDateError(
        f"The catalog {connector.url} is at schema revision {current}, newer than this version of "
        f"circuit-catalog knows (its newest is {head_revision()}): a newer circuit-catalog wrote it. "
        "Upgrade circuit-catalog (pip install -U circuit-catalog) to use it; do not downgrade the database."
    )


def check_schema(connector: Connector, migrate_empty: bool = True) -> None:
    """Migrate a new, empty database to head; refuse one that is behind, ahead or foreign."""
    try:
        tables = set(inspect(connector.engine).get_table_names())
    except SQLAlchemyError as exc:
        raise connector.translate(exc) from exc
    if not tables:
        if migrate_empty and connector.read_only:
            raise StoreUnavailableError(f"The catalog {connector.url} is empty and read-only; there is nothing to read.")
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
    if not _known(current):
        raise _newer_error(connector, current)
    raise SchemaOutOfDateError(
        f"The catalog {connector.url} is at schema revision {current}; this version needs {head}. "
        "Run `catalog db upgrade` (back the database up first)."
    )
