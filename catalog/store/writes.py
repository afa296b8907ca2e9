"""The store's one writer: a file's circuits in one transaction, deduplicated by content.

`Writer` is the part of `Catalog` that adds circuits. Every add goes through `add_many`: one
transaction, all or none (an error, Ctrl-C or a signal turned into an exception rolls it all
back), each circuit identified by its content hash (`catalog.store.identity`) so repeated and
concurrent loads store it once. Nodes and edges are written with Core ``insert()`` executemany
batches (COPY on PostgreSQL), not one ORM object per edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from itertools import islice
from typing import Any, cast

from sqlalchemy import Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.errors import InvalidInputError, NotFoundError
from catalog.graph import ModelShape
from catalog.provenance import Circuit
from catalog.store import engine
from catalog.store.convert import (
    ANNOTATION_COLUMNS,
    EDGE_COLUMNS,
    NODE_COLUMNS,
    TAG_COLUMNS,
    annotation_rows,
    check_lengths,
    check_metrics,
    check_text,
    edge_rows,
    node_rows,
    provenance_columns,
    shape_from,
)
from catalog.store.identity import content_hash
from catalog.store.records import Added
from catalog.store.schema import (
    AnnotationRow,
    CircuitRow,
    EdgeRow,
    ModelRow,
    NodeRow,
    RunRow,
    RunStatus,
    TagRow,
    TaskRow,
)

MAX_ID = 2**63 - 1  # the widest integer SQLite and PostgreSQL (bigint) store
_BATCH = 2_000  # rows per executemany call: memory stays that of one batch, speed that of one call


def table_of(row: type[Any]) -> Table:
    """The Core table of an ORM row class (typed: ``__table__`` is a plain FromClause to mypy)."""
    return cast(Table, row.__table__)


def now() -> datetime:
    return datetime.now(timezone.utc)


class Writer:
    """Adding circuits (mixed into `Catalog`, which provides the connector)."""

    _db: engine.Connector
    _insert_sql: dict[tuple[str, str], str]

    @property
    def url(self) -> str:
        """The database URL with any password masked."""
        return self._db.url

    def add(self, circuit: Circuit) -> int:
        """Store `circuit` in one transaction and return its new id (`circuit.id` is ignored).

        Always adds a new record, even for content already stored; `add_many` deduplicates."""
        return self.add_many([circuit], allow_duplicate=True)[0].id

    def add_many(self, circuits: Iterable[Circuit], *, allow_duplicate: bool = False) -> list[Added]:
        """Store `circuits` in ONE transaction, all or none (an error, Ctrl-C or a signal turned
        into an exception by `catalog.signals` rolls every one back); one `Added` each, in order.

        Each circuit is identified by its content hash (`catalog.store.identity`): one already in
        the catalog, or earlier in `circuits`, is not stored again and its `Added` names the
        existing id (``duplicate=True``). Concurrent writers of the same content store it once.
        `allow_duplicate` stores every circuit as a new record (a deliberate duplicate)."""
        items = list(circuits)
        for c in items:
            if not isinstance(c, Circuit):
                raise InvalidInputError(f"Catalog.add takes a catalog.provenance.Circuit, not {type(c).__name__}.")
        hashes = [None if allow_duplicate else content_hash(c) for c in items]
        out: list[Added] = []
        with self._db.session_scope(write=True) as s:
            self._lock_hashes(s, [h for h in hashes if h])
            seen: dict[str, int] = {}
            for c, h in zip(items, hashes):
                existing = seen.get(h) if h else None
                if h and existing is None:
                    existing = self._stored_as(s, c, h)
                if existing is not None:
                    out.append(Added(id=existing, duplicate=True))
                    continue
                if c.run_id is not None:
                    self._running(s, c.run_id)
                cid = self._insert(s, c, c.run_id, h)
                if h:
                    seen[h] = cid
                out.append(Added(id=cid, duplicate=False))
        return out

    def _stored_as(self, s: Session, circuit: Circuit, h: str) -> int | None:
        """The id of a stored circuit with content hash `h`, or None. A circuit stored without a
        hash (before revision 0003, or as a deliberate duplicate) from the same source file is
        compared by content and, if equal, given the hash now, so it is found next time."""
        found = s.scalar(select(CircuitRow.id).where(CircuitRow.content_hash == h))
        sha = circuit.provenance.source_sha256
        if found is not None or sha is None:
            return found
        legacy = s.scalars(select(CircuitRow.id).where(
            CircuitRow.content_hash.is_(None), CircuitRow.source_sha256 == sha,
            CircuitRow.source == circuit.provenance.source.value).order_by(CircuitRow.id)).all()
        for cid in legacy:
            old = self._load(s, cid)
            if old is not None and content_hash(old) == h:
                s.execute(update(CircuitRow).where(CircuitRow.id == cid).values(content_hash=h))
                return cid
        return None

    def _lock_hashes(self, s: Session, hashes: list[str]) -> None:
        """On PostgreSQL, take a transaction lock per content hash (in sorted order, so two
        writers cannot deadlock): a second writer of the same content waits for the first to
        commit, then finds its circuit. SQLite writers are already serialised (BEGIN IMMEDIATE);
        the UNIQUE constraint backs both."""
        if not hashes or s.connection().dialect.name != "postgresql":
            return
        for h in sorted(set(hashes)):
            key = int(h[:15], 16)  # 60 bits: fits PostgreSQL's signed bigint lock key
            s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def _insert(self, s: Session, circuit: Circuit, run_id: int | None, hash_: str | None = None) -> int:
        if not circuit.task or not circuit.task.strip():
            raise InvalidInputError("A circuit needs a task name (e.g. ioi); pass --task when importing.")
        graph = circuit.graph
        size = graph.summary()
        tags = tuple(circuit.tags)
        if any(not isinstance(t, str) or not t.strip() for t in tags):
            raise InvalidInputError(f"Tags must be non-empty strings, got {list(tags)!r}.")
        check_text(circuit)
        check_lengths(circuit)
        values = {
            "name": circuit.name,
            "model_id": self._model_id(s, graph.shape),
            "task_id": self._task_id(s, circuit.task.strip()),
            "run_id": run_id,
            "metrics": check_metrics(circuit.metrics),
            "added_at": now(),
            "n_nodes": size["nodes"], "n_edges": size["edges"], "n_heads": size["heads"],
            "n_mlps": size["mlps"], "n_features": size["features"], "n_scored_edges": size["scored_edges"],
            **provenance_columns(circuit.provenance),
        }
        if hash_ is not None:  # only then: a catalog at an older revision lacks the column
            values["content_hash"] = hash_
        circuits = table_of(CircuitRow)
        cid = int(s.execute(insert(circuits).values(**values).returning(circuits.c.id)).scalar_one())
        self._bulk_insert(s, table_of(NodeRow), NODE_COLUMNS, node_rows(cid, graph))
        self._bulk_insert(s, table_of(EdgeRow), EDGE_COLUMNS, edge_rows(cid, graph))
        self._bulk_insert(s, table_of(AnnotationRow), ANNOTATION_COLUMNS, annotation_rows(cid, graph))
        self._bulk_insert(s, table_of(TagRow), TAG_COLUMNS, [(cid, i, t) for i, t in enumerate(tags)])
        return cid

    def _bulk_insert(self, s: Session, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        """Insert `rows` (tuples in `columns` order): COPY on PostgreSQL, else executemany.

        The executemany statement is SQLAlchemy Core's ``insert(table)`` compiled once for the dialect; rows go
        to the driver as plain tuples (or dicts for named paramstyles), which skips the per-row
        parameter processing an ORM or Core ``execute(insert, [dicts])`` does: on SQLite that is
        about twice as fast for the million-edge ingest. Values are already plain Python types
        (str, int, float, bool, None; JSON as text). Rows are taken `_BATCH` at a time, so a large
        graph never exists a second time as a list of rows."""
        conn = s.connection()
        rows = iter(rows)
        if conn.dialect.name == "postgresql":
            # COPY is PostgreSQL's bulk path: an order of magnitude faster than batched INSERTs.
            with conn.connection.dbapi_connection.cursor() as cur:  # type: ignore[union-attr]
                first = next(rows, None)
                if first is None:
                    return
                with cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                    copy.write_row(first)
                    for row in rows:
                        copy.write_row(row)
            return
        key = (conn.dialect.name, table.name)
        sql = self._insert_sql.get(key)
        if sql is None:
            sql = str(insert(table).compile(dialect=conn.dialect, column_keys=list(columns)))
            self._insert_sql[key] = sql
        positional = conn.dialect.paramstyle in ("qmark", "numeric", "format")
        while chunk := list(islice(rows, _BATCH)):
            conn.exec_driver_sql(sql, chunk if positional else [dict(zip(columns, r)) for r in chunk])

    def _model_id(self, s: Session, shape: ModelShape) -> int:
        revision = shape.revision or ""
        models = table_of(ModelRow)
        find = select(models).where(models.c.name == shape.name, models.c.revision == revision)
        row = s.execute(find).one_or_none()
        if row is None:
            try:
                with s.begin_nested():
                    s.execute(insert(models).values(
                        name=shape.name, revision=revision, n_layers=shape.n_layers, n_heads=shape.n_heads,
                        d_model=shape.d_model, parallel_attn_mlp=shape.parallel_attn_mlp))
            except IntegrityError:
                pass  # another writer added it meanwhile (PostgreSQL); read theirs
            row = s.execute(find).one()
        stored = shape_from(row)
        if stored != shape:
            raise InvalidInputError(
                f"Model '{shape.name}'{f' revision {revision}' if revision else ''} is already in the catalog "
                f"with {_describe(stored)}, but this circuit's graph has {_describe(shape)}. Give this model "
                "another name or revision, or fix the shape."
            )
        return int(row.id)

    def _task_id(self, s: Session, task: str) -> int:
        find = select(TaskRow.id).where(TaskRow.name == task)
        tid = s.scalar(find)
        if tid is None:
            try:
                with s.begin_nested():
                    s.execute(insert(TaskRow).values(name=task))
            except IntegrityError:
                pass
            tid = s.scalar(find)
        return int(tid)  # type: ignore[arg-type]

    def _running(self, s: Session, run_id: int) -> RunRow:
        row = s.get(RunRow, as_id(run_id, "run"))
        if row is None:
            raise NotFoundError(f"No run #{run_id} in {self.url}. Run `catalog runs` to see the runs.")
        if row.status != RunStatus.RUNNING.value:
            raise InvalidInputError(f"Run #{run_id} is already {row.status}; start a new run instead.")
        return row


    def _load(self, s: Session, cid: int) -> Circuit | None:
        raise NotImplementedError  # provided by Catalog


def as_id(value: Any, what: str = "circuit") -> int:
    """`value` (``12``, ``"#12"``) as a record id; a clear error for anything else."""
    text = str(value).lstrip("#")
    shown = text if len(text) <= 40 else f"{text[:20]}...{text[-8:]}"  # keep the message one short line
    try:  # a literal over 19 digits is out of range, and never reaches int() (which refuses 4,300+)
        out = None if isinstance(value, bool) else MAX_ID + 1 if text.isdigit() and len(text) > 19 else int(text)
    except ValueError:
        out = None
    if out is None or out < 1:
        raise InvalidInputError(f"'{shown}' is not a {what} id; ids are positive integers (see `catalog list`).")
    if out > MAX_ID:  # beyond any database's integer: no such record (not a driver overflow)
        where = "`catalog runs`" if what == "run" else "`catalog list`"
        raise NotFoundError(f"No {what} #{shown} in the catalog: ids are at most {MAX_ID}. Run {where} to see the ids.")
    return out


def _describe(shape: ModelShape) -> str:
    extra = f", d_model {shape.d_model}" if shape.d_model else ""
    par = ", parallel attention/MLP" if shape.parallel_attn_mlp else ""
    return f"{shape.n_layers} layers x {shape.n_heads} heads{extra}{par}"
