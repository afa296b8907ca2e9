"""`Catalog`: the store's public face. Add, get, list, resolve and delete circuits, record
discovery runs, and answer aggregate questions in SQL.

Every write is one transaction through `Connector.session_scope`, so a failed or interrupted
add leaves nothing behind. Adding circuits (one writer, deduplicated by content) lives in
`catalog.store.writes`; the run bookkeeping helpers (owner, heartbeat, staleness) in
`catalog.store.runs`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.orm import Session
from typing_extensions import Unpack

from catalog.analysis.records import InterventionResult, RoleReport
from catalog.attention import AttentionPatterns
from catalog.bounds import stored_mapping
from catalog.errors import (
    AmbiguousReferenceError,
    CatalogError,
    InvalidInputError,
    NotFoundError,
    SchemaOutOfDateError,
    suggest,
)
from catalog.graph import ModelShape
from catalog.naming import NodeKind
from catalog.provenance import PART_TAG, Circuit, Provenance
from catalog.shapes import canonical_model_name
from catalog.store import aggregates, analyses, engine, runs
from catalog.store.convert import (
    check_provenance_lengths,
    check_provenance_text,
    graph_from,
    provenance_columns,
    provenance_from,
    shape_from,
    utc,
)
from catalog.store.writes import Writer, as_id, now

if TYPE_CHECKING:
    from catalog.store.sweeps import SweepStore
from catalog.store.records import (
    CircuitSummary,
    ComponentCount,
    FindHit,
    Membership,
    RunRecord,
    SchemaStatus,
    TaskOverlap,
)
from catalog.store.schema import (
    AnnotationRow,
    AttentionRow,
    CircuitRow,
    EdgeRow,
    ModelRow,
    NodeRow,
    RunRow,
    RunStatus,
    TagRow,
    TaskRow,
)


def model_names(model: str) -> set[str]:
    """The stored names a model filter matches: as given and as the canonical name."""
    return {model.strip(), canonical_model_name(model)}


class Catalog(Writer):
    """A circuit catalog in one database (SQLite file or PostgreSQL). Open with `Catalog.open`."""

    def __init__(self, connector: engine.Connector) -> None:
        self._db = connector
        self._insert_sql: dict[tuple[str, str], str] = {}

    # --- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str | None = None, *, check_schema: bool = True, create: bool = True) -> Catalog:
        """Open the catalog at `url` (a path or SQLAlchemy URL; None: ``$CATALOG_DB``, then the
        default file). A new, empty database is migrated to head. An existing one behind head
        raises `SchemaOutOfDateError` unless `check_schema` is False (for ``catalog db upgrade``).
        With `create` False a SQLite file that does not exist raises `NotFoundError` instead of
        being created (for commands that only read). A file or folder that is not writable is
        opened read-only: reads work, writes raise `StoreUnavailableError`."""
        connector = engine.Connector(engine.make_engine(engine.resolve_url(url), create=create))
        try:
            engine.check_schema(connector, migrate_empty=check_schema)
        except SchemaOutOfDateError:
            if check_schema:  # behind head: only `catalog db upgrade` may open it
                raise
        return cls(connector)

    @property
    def read_only(self) -> bool:
        """True when the catalog was opened read-only (its SQLite file or folder is not writable)."""
        return self._db.read_only

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._db.engine.dialect.name

    def upgrade(self, target: str = "head") -> SchemaStatus:
        """Apply the migrations up to `target` (the newest by default); say where it went from."""
        previous = self.current_revision()
        engine.upgrade(self._db, target)
        return self.schema_status().model_copy(update={"previous": previous})

    def schema_status(self) -> SchemaStatus:
        """The database's schema revision and the newest one this version knows."""
        current, head = self.current_revision(), self.head_revision()
        return SchemaStatus(url=self.url, current=current, head=head, up_to_date=current == head)

    def current_revision(self) -> str | None:
        return engine.current_revision(self._db)

    def head_revision(self) -> str:
        return engine.head_revision()

    def connection_url(self) -> str:
        """The full URL (password included) for opening this catalog from another process, e.g.
        a sweep's workers. Never print it: `url` is the one for messages."""
        return self._db.engine.url.render_as_string(hide_password=False)

    @property
    def sweeps(self) -> SweepStore:
        """The catalog's sweeps (`catalog sweep`): grids of discovery runs and their cells."""
        from catalog.store.sweeps import SweepStore

        return SweepStore(self._db)

    def close(self) -> None:
        self._db.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Catalog({self.url!r})"

    # --- circuits -----------------------------------------------------------------------------

    def get(self, circuit_id: int) -> Circuit:
        """The stored circuit, exactly as added (with its id and run id set). Read in one
        snapshot: a circuit deleted meanwhile is whole or `NotFoundError`, never half."""
        cid = as_id(circuit_id)
        with self._db.session_scope() as s:
            circuit = self._load(s, cid)
        if circuit is None:
            raise NotFoundError(f"No circuit #{cid} in {self.url}. Run `catalog list` to see the ids.")
        return circuit

    def _load(self, s: Session, cid: int) -> Circuit | None:
        row = s.get(CircuitRow, cid)
        if row is None:
            return None
        shape = shape_from(s.get_one(ModelRow, row.model_id))
        task = s.get_one(TaskRow, row.task_id).name
        nodes = s.execute(select(NodeRow.__table__).where(NodeRow.circuit_id == cid)).all()
        edges = s.execute(select(EdgeRow.__table__).where(EdgeRow.circuit_id == cid)).all()
        anns = s.execute(select(AnnotationRow.__table__).where(AnnotationRow.circuit_id == cid)).all()
        tags = s.scalars(select(TagRow.tag).where(TagRow.circuit_id == cid).order_by(TagRow.position)).all()
        return Circuit(graph=graph_from(shape, nodes, edges, anns), task=task,
                       provenance=provenance_from(row), name=row.name, tags=tuple(tags),
                       metrics=stored_mapping(row.metrics), id=cid, run_id=row.run_id)

    def attention(self, circuit_id: int) -> AttentionPatterns | None:
        """The attention patterns recorded with a discovered circuit (None when none were:
        imported and published circuits, or discovery on a model without heads)."""
        cid = as_id(circuit_id)
        with self._db.session_scope() as s:
            if s.get(CircuitRow, cid) is None:
                raise NotFoundError(f"No circuit #{cid} in {self.url}. Run `catalog list` to see the ids.")
            data = s.scalar(select(AttentionRow.data).where(AttentionRow.circuit_id == cid))
        return None if data is None else AttentionPatterns.model_validate(data)

    def delete(self, circuit_id: int) -> None:
        """Delete a circuit with its nodes, edges, annotations and tags (one transaction)."""
        cid = as_id(circuit_id)
        with self._db.session_scope(write=True) as s:
            analyses.delete_all(s, cid)
            for table in (TagRow, AnnotationRow, EdgeRow, NodeRow, AttentionRow):  # explicit: no reliance on cascades
                s.execute(delete(table).where(table.circuit_id == cid))
            gone = s.execute(delete(CircuitRow).where(CircuitRow.id == cid))
            if getattr(gone, "rowcount", 0) == 0:
                raise NotFoundError(f"No circuit #{cid} in {self.url}. Run `catalog list` to see the ids.")

    def circuits(self, model: str | None = None, task: str | None = None, method: str | None = None,
             tag: str | None = None, source: str | None = None) -> list[CircuitSummary]:
        """Summaries of the stored circuits matching every filter given, oldest first."""
        q = _summary_select()
        if model:
            q = q.where(ModelRow.name.in_(model_names(model)))
        if task:
            q = q.where(func.lower(TaskRow.name) == task.strip().lower())  # IOI finds ioi
        if method:
            q = q.where(CircuitRow.method == method.strip())
        if source:
            q = q.where(CircuitRow.source == str(getattr(source, "value", source)).strip())
        if tag:
            q = q.where(CircuitRow.id.in_(select(TagRow.circuit_id).where(TagRow.tag == tag.strip())))
        with self._db.session_scope() as s:
            rows = s.execute(q.order_by(CircuitRow.id)).all()
            tags = _tags_of(s, [r.id for r in rows])
        return [_summary(r, tags.get(r.id, ())) for r in rows]

    def summary(self, circuit_id: int) -> CircuitSummary:
        """The listing line of one circuit, without loading its graph."""
        cid = as_id(circuit_id)
        with self._db.session_scope() as s:
            row = s.execute(_summary_select().where(CircuitRow.id == cid)).one_or_none()
            if row is None:
                raise NotFoundError(f"No circuit #{cid} in {self.url}. Run `catalog list` to see the ids.")
            return _summary(row, _tags_of(s, [cid]).get(cid, ()))

    def models(self) -> list[ModelShape]:
        """The model shapes the catalog knows, by name."""
        with self._db.session_scope() as s:
            return [shape_from(r) for r in s.scalars(select(ModelRow).order_by(ModelRow.name, ModelRow.revision))]

    def tasks(self) -> list[str]:
        """The task names that have at least one circuit, sorted."""
        with self._db.session_scope() as s:
            q = select(TaskRow.name).where(TaskRow.id.in_(select(CircuitRow.task_id))).order_by(TaskRow.name)
            return list(s.scalars(q))

    def resolve(self, ref: str | int, model: str | None = None) -> int:
        """A circuit id from `ref`: an id (``12`` or ``#12``), a task name (the newest circuit for
        that task on `model`), or else a circuit name (the newest with that name).

        Raises `AmbiguousReferenceError`, listing the candidates, when the name matches circuits
        on several models and no `model` is given; `NotFoundError` when nothing matches.
        """
        text = str(ref).strip()
        if text.lstrip("#").isdigit():
            cid = as_id(text)
            with self._db.session_scope() as s:
                if s.get(CircuitRow, cid) is None:
                    raise NotFoundError(f"No circuit #{cid} in {self.url}. Run `catalog list` to see the ids.")
            return cid
        with self._db.session_scope() as s:
            for what, column in (("task", TaskRow.name), ("circuit name", CircuitRow.name)):
                # names match whatever their case: `catalog show IOI` finds the ioi circuits
                q = _summary_select().where(func.lower(column) == text.lower())
                if model:
                    q = q.where(ModelRow.name.in_(model_names(model)))
                rows = s.execute(q.order_by(CircuitRow.id.desc())).all()
                if not rows:
                    continue
                newest: dict[str, Any] = {}
                for r in rows:
                    newest.setdefault(r.model, r)
                if len(newest) > 1:
                    listed = "; ".join(f"#{r.id} on {m} ({r.name or 'unnamed'})" for m, r in sorted(newest.items()))
                    raise AmbiguousReferenceError(
                        f"The {what} '{text}' has circuits on several models: {listed}. Choose one with "
                        "--model, or give a circuit id."
                    )
                return int(rows[0].id)
            known = list(s.scalars(select(TaskRow.name)))
        where = f" on model {model}" if model else ""
        if known:
            err = suggest(text, known, "task")
            raise NotFoundError(f"No circuit for '{text}'{where}: not an id, task or circuit name. "
                                f"{str(err).split('. ', 1)[1]}")
        raise NotFoundError(f"No circuit for '{text}'{where}: the catalog {self.url} is empty. Import or discover one first.")

    # --- analyses of a circuit ---------------------------------------------------------------

    def add_roles(self, circuit_id: int, report: RoleReport) -> int:
        """Store measured head roles with a circuit (one transaction); the analysis id."""
        cid = self._existing(circuit_id)
        with self._db.session_scope(write=True) as s:
            return analyses.add_roles(s, cid, report)

    def roles(self, circuit_id: int) -> RoleReport | None:
        """The newest head roles measured for a circuit (None if never measured)."""
        with self._db.session_scope() as s:
            return analyses.latest_roles(s, as_id(circuit_id))

    def add_intervention(self, circuit_id: int, result: InterventionResult) -> int:
        """Store an intervention's outcome with a circuit; the analysis id."""
        cid = self._existing(circuit_id)
        with self._db.session_scope(write=True) as s:
            return analyses.add_intervention(s, cid, result)

    def interventions(self, circuit_id: int) -> list[InterventionResult]:
        """The interventions stored with a circuit, oldest first."""
        with self._db.session_scope() as s:
            return analyses.interventions(s, as_id(circuit_id))

    def _existing(self, circuit_id: int) -> int:
        cid = as_id(circuit_id)
        with self._db.session_scope() as s:
            if s.get(CircuitRow, cid) is None:
                raise NotFoundError(f"No circuit #{cid} in {self.url}. Run `catalog list` to see the ids.")
        return cid

    # --- runs ---------------------------------------------------------------------------------

    def start_run(self, model: ModelShape, task: str, provenance: Provenance) -> int:
        """Record a discovery run as ``running``, owned by this process, and return its id."""
        if not task or not task.strip():
            raise InvalidInputError("A run needs a task name.")
        check_provenance_text(provenance)
        check_provenance_lengths(provenance)
        with self._db.session_scope(write=True) as s:
            moment = now()
            values = {"model_id": self._model_id(s, model), "task_id": self._task_id(s, task.strip()),
                      "status": RunStatus.RUNNING.value, "started_at": moment, "host": runs.this_host(),
                      "pid": os.getpid(), "heartbeat_at": moment, **provenance_columns(provenance)}
            return int(s.execute(insert(RunRow).values(**values).returning(RunRow.id)).scalar_one())

    def heartbeat(self, run_id: int) -> None:
        """Say that a running run's process is alive (see `catalog.store.runs`)."""
        with self._db.session_scope(write=True) as s:
            s.execute(update(RunRow).where(RunRow.id == as_id(run_id, "run"),
                                           RunRow.status == RunStatus.RUNNING.value)
                      .values(heartbeat_at=now()))

    @contextmanager
    def tracked_run(self, model: ModelShape, task: str, provenance: Provenance,
                    heartbeat_s: float = runs.HEARTBEAT_S) -> Iterator[int]:
        """A run for the block: started, kept alive by a heartbeat, and if the block raises,
        recorded as ``interrupted`` (Ctrl-C, SIGTERM, SIGHUP: see `catalog.signals`) or ``failed``,
        with the reason, before the error goes on. The block calls `finish_run` to store its circuit."""
        from catalog import signals

        run_id = self.start_run(model, task, provenance)
        try:
            with runs.Heartbeat(lambda: self.heartbeat(run_id), heartbeat_s):
                yield run_id
        except BaseException as e:
            with signals.shielded():  # a second signal must not leave the run "running"
                interrupted = isinstance(e, KeyboardInterrupt)
                reason = signals.describe(e) if interrupted else f"{type(e).__name__}: {e}"
                try:
                    self._end_run(run_id, RunStatus.INTERRUPTED if interrupted else RunStatus.FAILED, reason)
                except CatalogError as bookkeeping:  # the original error matters more; keep both
                    note = getattr(e, "add_note", None)  # Python 3.11+; on 3.10 the original error alone
                    if callable(note):
                        note(f"The run could not be marked {'interrupted' if interrupted else 'failed'} "
                             f"either: {bookkeeping}")
            raise

    def finish_run(self, run_id: int, circuit: Circuit, attention: AttentionPatterns | None = None,
                   parts: Sequence[Circuit] = ()) -> int:
        """Store the run's circuit (and its heads' attention patterns, if recorded) and mark the
        run ``done``, in one transaction; the circuit id. `parts` (e.g. the per-prompt graphs a
        feature circuit aggregates) are stored first, with the same run, so the run lists them
        all and the run's circuit is the newest of its task."""
        with self._db.session_scope(write=True) as s:
            self._running(s, run_id)
            for part in parts:
                self._insert(s, replace(part, run_id=run_id), run_id)
            cid = self._insert(s, replace(circuit, run_id=run_id), run_id)
            if attention is not None:
                s.add(AttentionRow(circuit_id=cid, data=attention.model_dump(mode="json")))
            s.execute(update(RunRow).where(RunRow.id == run_id)
                      .values(status=RunStatus.DONE.value, finished_at=now(), error=None))
            return cid

    def fail_run(self, run_id: int, message: str) -> None:
        """Mark a running run ``failed`` with the error message (no circuit is stored)."""
        self._end_run(run_id, RunStatus.FAILED, message)

    def interrupt_run(self, run_id: int, reason: str) -> None:
        """Mark a running run ``interrupted`` (stopped by a signal) with the reason."""
        self._end_run(run_id, RunStatus.INTERRUPTED, reason)

    def _end_run(self, run_id: int, status: RunStatus, message: str) -> None:
        with self._db.session_scope(write=True) as s:
            self._running(s, run_id)
            s.execute(update(RunRow).where(RunRow.id == run_id)
                      .values(status=status.value, finished_at=now(), error=str(message)))

    def cleanup_runs(self, stale_after: float = runs.STALE_AFTER_S) -> list[RunRecord]:
        """Mark every stale run (``running`` but its process is gone) ``failed``, saying why;
        return them as they are now. A run that finishes meanwhile is left alone."""
        stale = [r for r in self.list_runs(status=RunStatus.RUNNING.value, stale_after=stale_after) if r.stale]
        with self._db.session_scope(write=True) as s:
            for r in stale:
                s.execute(update(RunRow).where(RunRow.id == r.id, RunRow.status == RunStatus.RUNNING.value)
                          .values(status=RunStatus.FAILED.value, finished_at=now(),
                                  error=f"stale: {r.stale_reason}; marked failed by `catalog runs --cleanup`"))
        return self.list_runs(_ids=[r.id for r in stale]) if stale else []

    def parts(self, circuit_id: int) -> list[int]:
        """The per-example circuits (tagged ``part``, e.g. each prompt's attribution graph) stored
        with a circuit's run, in example order; empty when it has none or is a part itself."""
        s = self.summary(circuit_id)
        if s.run_id is None or PART_TAG in s.tags:
            return []
        others = [i for i in self.get_run(s.run_id).circuit_ids if i != s.id]
        tagged = {r.id for r in self.circuits(tag=PART_TAG)} if others else set()
        return [i for i in others if i in tagged]

    def get_run(self, run_id: int) -> RunRecord:
        rid = as_id(run_id, "run")
        found = self.list_runs(_ids=[rid])
        if not found:
            raise NotFoundError(f"No run #{rid} in {self.url}. Run `catalog runs` to see the runs.")
        return found[0]

    def list_runs(self, status: str | None = None, model: str | None = None, task: str | None = None,
                  *, stale_after: float = runs.STALE_AFTER_S, _ids: Sequence[int] | None = None) -> list[RunRecord]:
        """Runs matching the filters, oldest first. `status` may also be ``stale``: running runs
        whose process is gone (see `catalog.store.runs`)."""
        q = (select(RunRow, ModelRow.name.label("model"), TaskRow.name.label("task"))
             .join(ModelRow, RunRow.model_id == ModelRow.id).join(TaskRow, RunRow.task_id == TaskRow.id))
        known = [s.value for s in RunStatus] + ["stale"]
        if status:
            if status not in known:
                raise InvalidInputError(f"Unknown run status '{status}'. Use {', '.join(known)}.")
            q = q.where(RunRow.status == (RunStatus.RUNNING.value if status == "stale" else status))
        if model:
            q = q.where(ModelRow.name.in_(model_names(model)))
        if task:
            q = q.where(func.lower(TaskRow.name) == task.strip().lower())  # IOI finds ioi
        if _ids is not None:
            q = q.where(RunRow.id.in_(list(_ids)))
        with self._db.session_scope() as s:
            rows = s.execute(q.order_by(RunRow.id)).all()
            ids = [r.RunRow.id for r in rows]
            made: dict[int, list[int]] = {}
            if ids:
                for cid, rid in s.execute(select(CircuitRow.id, CircuitRow.run_id)
                                          .where(CircuitRow.run_id.in_(ids)).order_by(CircuitRow.id)):
                    if rid is not None:  # the query asks for run ids; never None here
                        made.setdefault(rid, []).append(cid)
            moment = now()
            out = [_run_record(r.RunRow, r.model, r.task, made.get(r.RunRow.id, ()), moment, stale_after) for r in rows]
        # "running" still lists stale runs (that is what they are recorded as); "stale" only them.
        return [r for r in out if r.stale] if status == "stale" else out

    # --- aggregates (SQL; no graph is loaded) ---------------------------------------------------

    def component_counts(self, model: str | None = None,
                         kinds: Iterable[NodeKind | str] | None = None) -> list[ComponentCount]:
        """Per (model, component): how many distinct tasks and circuits contain it, and which tasks."""
        with self._db.session_scope() as s:
            return aggregates.component_counts(s, _names(model), _kinds(kinds))

    def task_overlap(self, model: str, kinds: Iterable[NodeKind | str] | None = None) -> TaskOverlap:
        """Task x task shared-component counts over the newest circuit per task on `model`."""
        with self._db.session_scope() as s:
            return aggregates.task_overlap(s, model, model_names(model), _kinds(kinds))

    def find(self, component_id: str, model: str | None = None) -> list[FindHit]:
        """Every circuit whose circuit contains `component_id`, with its role and score there.

        Without a position (``f3.1200[clt]``, ``a9.h9``) the id also matches positioned nodes
        (``f3.1200@4[clt]``, ``a9.h9@7``)."""
        with self._db.session_scope() as s:
            return aggregates.find(s, component_id, _names(model))

    def membership(self, model: str | None = None, kinds: Iterable[NodeKind | str] | None = None,
                   circuit_ids: Iterable[int] | None = None) -> Membership:
        """Member component ids per circuit (one query), for all-pairs overlap."""
        ids = None if circuit_ids is None else [as_id(c) for c in circuit_ids]
        with self._db.session_scope() as s:
            return aggregates.membership(s, model, _names(model), _kinds(kinds), ids)


# --- helpers --------------------------------------------------------------------------------------


def _names(model: str | None) -> set[str] | None:
    return model_names(model) if model else None


def _kinds(kinds: Iterable[NodeKind | str] | None) -> list[str] | None:
    if kinds is None:
        return None
    out = []
    for k in kinds:
        try:
            out.append(NodeKind(k).value)
        except ValueError:
            raise InvalidInputError(
                f"Unknown component kind '{k}'. Known: {', '.join(n.value for n in NodeKind)}."
            ) from None
    return out


def _summary_select() -> Select[Unpack[tuple[Any, ...]]]:
    return (select(CircuitRow.id, CircuitRow.name, ModelRow.name.label("model"), TaskRow.name.label("task"),
                   CircuitRow.method, CircuitRow.source, CircuitRow.n_nodes, CircuitRow.n_edges,
                   CircuitRow.n_heads, CircuitRow.n_mlps, CircuitRow.n_features, CircuitRow.n_scored_edges,
                   CircuitRow.created_at, CircuitRow.added_at, CircuitRow.metrics, CircuitRow.run_id)
            .join(ModelRow, CircuitRow.model_id == ModelRow.id)
            .join(TaskRow, CircuitRow.task_id == TaskRow.id))


def _tags_of(s: Session, ids: list[int]) -> dict[int, tuple[str, ...]]:
    out: dict[int, list[str]] = {}
    if ids:
        q = select(TagRow.circuit_id, TagRow.tag).order_by(TagRow.circuit_id, TagRow.position)
        if len(ids) < 1000:
            q = q.where(TagRow.circuit_id.in_(ids))
        for cid, tag in s.execute(q):
            out.setdefault(cid, []).append(tag)
    return {k: tuple(v) for k, v in out.items()}


def _summary(r: Any, tags: tuple[str, ...]) -> CircuitSummary:
    return CircuitSummary(
        id=r.id, name=r.name, model=r.model, task=r.task, method=r.method, source=r.source,
        n_nodes=r.n_nodes, n_edges=r.n_edges, n_heads=r.n_heads, n_mlps=r.n_mlps, n_features=r.n_features,
        n_scored_edges=r.n_scored_edges, created_at=utc(r.created_at), added_at=utc(r.added_at),
        tags=tags, metrics=stored_mapping(r.metrics), run_id=r.run_id,
    )


def _run_record(row: RunRow, model: str, task: str, circuits: Iterable[int], moment: datetime,
                stale_after: float) -> RunRecord:
    started = utc(row.started_at)
    finished = utc(row.finished_at) if row.finished_at else None
    heartbeat = utc(row.heartbeat_at) if row.heartbeat_at else None
    reason = None
    if row.status == RunStatus.RUNNING.value:
        reason = runs.stale_reason(row.host, row.pid, heartbeat, started, moment, stale_after)
    return RunRecord(
        id=row.id, model=model, task=task, status=row.status, provenance=provenance_from(row),
        started_at=started, finished_at=finished,
        seconds=(finished - started).total_seconds() if finished else None, error=row.error,
        circuit_ids=tuple(circuits), host=row.host, pid=row.pid, heartbeat_at=heartbeat,
        stale=reason is not None, stale_reason=reason,
    )
