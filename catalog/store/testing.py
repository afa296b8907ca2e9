"""Throw-away PostgreSQL databases for tests and benchmarks of code that uses a catalog.

>>> # with fresh_postgres_database(os.environ["CATALOG_TEST_POSTGRES_URL"]) as url:
>>> #     cat = Catalog.open(url)      # an empty database, dropped on exit
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError


@contextmanager
def fresh_postgres_database(base_url: str, prefix: str = "cc_test") -> Iterator[str]:
    """Create an empty database on the server of `base_url` (its role needs CREATEDB), yield its
    URL, and drop it (closing any connection left open) on exit."""
    url = make_url(base_url)
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        _drop(admin, name)
        admin.dispose()


def _drop(admin: Engine, name: str, attempts: int = 10) -> None:
    """Drop database `name`, retrying while a dying session (e.g. of a killed client) or an
    autovacuum worker still holds it; warn rather than fail if it outlives the retries."""
    for attempt in range(attempts):
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except DBAPIError as exc:
            if attempt == attempts - 1:
                warnings.warn(f"could not drop test database {name}: {exc.orig}", stacklevel=3)
                return
            time.sleep(0.5)
